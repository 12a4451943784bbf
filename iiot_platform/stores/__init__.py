"""Time-series stores behind one Protocol: SQLite (default) and InfluxDB 2."""

from __future__ import annotations

from iiot_platform.settings import PlatformSettings
from iiot_platform.stores.base import (
    Aggregation,
    LatestValue,
    SeriesPoint,
    TelemetryRecord,
    TelemetryStore,
)

__all__ = [
    "Aggregation",
    "LatestValue",
    "SeriesPoint",
    "TelemetryRecord",
    "TelemetryStore",
    "make_store",
]


def make_store(settings: PlatformSettings) -> TelemetryStore:
    """The store the settings name; InfluxDB is imported only when chosen."""
    if settings.store == "influx":
        from iiot_platform.stores.influx import InfluxStore

        return InfluxStore(
            url=settings.influx_url or "http://127.0.0.1:8086",
            token=settings.influx_token or "",
            org=settings.influx_org,
            bucket=settings.influx_bucket,
        )
    from iiot_platform.stores.sqlite import SqliteStore

    return SqliteStore(settings.data_dir / "telemetry.sqlite")
