"""The check library: one module per family, all registered through registry.py."""
