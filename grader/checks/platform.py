"""Platform checks (over the platform API): filled in when the platform lands."""
