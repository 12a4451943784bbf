"""iiot_platform: the mini industrial internet platform (ingestion, stores, registry, rules,
alarms, identifier resolution, auth, web UI) and `iiotlab up`."""

from iiotlab import __version__

__all__ = ["__version__"]
