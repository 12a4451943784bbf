"""Device sources: each polls or subscribes to one device and hands cycles of values on."""

from edge_gateway.sources.base import Backoff, CycleSink, Source, SourceCycle, WriteError

__all__ = ["Backoff", "CycleSink", "Source", "SourceCycle", "WriteError"]
