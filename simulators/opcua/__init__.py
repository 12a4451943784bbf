"""asyncua server-side helpers of simulators/opcua_server.py."""
