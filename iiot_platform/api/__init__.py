"""REST API routers of the platform (mounted under /api by create_app)."""
