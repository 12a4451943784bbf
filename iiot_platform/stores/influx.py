"""InfluxDB 2 store (influxdb-client). One point per message; duplicates overwrite.

A telemetry message becomes one line `telemetry,tenant=T,device=D metric=value,... <ts ms>`;
InfluxDB keeps one point per series and timestamp, so a resent message (same seq, same
ts) is stored once. Integers are written as floats so a metric keeps one field type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from iiot_platform.stores.base import (
    Aggregation,
    LatestValue,
    MetricValue,
    SeriesPoint,
    TelemetryRecord,
)

_FLUX_FUNCTION = {"mean": "mean", "min": "min", "max": "max", "last": "last"}


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field(value: MetricValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def line_of(record: TelemetryRecord) -> str | None:
    """The line-protocol line of one record (None when it carries no metric)."""
    if not record.metrics:
        return None
    fields = ",".join(f"{_escape_tag(k)}={_field(v)}" for k, v in record.metrics.items())
    tags = f"tenant={_escape_tag(record.tenant)},device={_escape_tag(record.device)}"
    return f"telemetry,{tags} {fields},_seq={record.seq}i {record.ts}"


def _flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxStore:
    """Stores telemetry in an InfluxDB 2 bucket (created when missing)."""

    name = "influx"

    def __init__(self, *, url: str, token: str, org: str, bucket: str) -> None:
        self.url, self._token, self.org, self.bucket = url, token, org, bucket
        self._client: Any = None

    async def start(self) -> None:
        if self._client is None:
            self._client = await asyncio.to_thread(self._connect)

    def _connect(self) -> Any:
        from influxdb_client.client.influxdb_client import InfluxDBClient

        client = InfluxDBClient(url=self.url, token=self._token, org=self.org, timeout=10_000)
        buckets = client.buckets_api()
        if buckets.find_bucket_by_name(self.bucket) is None:  # type: ignore[no-untyped-call]
            buckets.create_bucket(bucket_name=self.bucket, org=self.org)
        return client

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def write(self, records: Sequence[TelemetryRecord]) -> int:
        lines = [line for line in map(line_of, records) if line is not None]
        if not lines:
            return 0
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        def write() -> None:
            api = self._client.write_api(write_options=SYNCHRONOUS)
            api.write(self.bucket, self.org, "\n".join(lines), WritePrecision.MS)

        await asyncio.to_thread(write)
        return sum(len(r.metrics) for r in records)

    async def _query(self, flux: str) -> list[Any]:
        def query() -> list[Any]:
            tables = self._client.query_api().query(flux, org=self.org)
            return [record for table in tables for record in table.records]

        return await asyncio.to_thread(query)

    def _base(self, tenant: str, device: str, start: str, stop: str = "") -> str:
        stop_part = f", stop: {stop}" if stop else ""
        return (
            f"from(bucket: {_flux_string(self.bucket)}) |> range(start: {start}{stop_part})"
            f' |> filter(fn: (r) => r._measurement == "telemetry"'
            f" and r.tenant == {_flux_string(tenant)} and r.device == {_flux_string(device)})"
        )

    async def latest(self, tenant: str, device: str) -> dict[str, LatestValue]:
        base = self._base(tenant, device, "0")
        rows = await self._query(f'{base} |> filter(fn: (r) => r._field != "_seq") |> last()')
        seqs = await self._query(f'{base} |> filter(fn: (r) => r._field == "_seq") |> last()')
        seq = int(seqs[0].get_value()) if seqs else 0
        return {
            row.get_field(): LatestValue(
                row.get_field(), row.get_value(), int(row.get_time().timestamp() * 1000), seq
            )
            for row in rows
        }

    async def series(
        self,
        tenant: str,
        device: str,
        metric: str,
        start_ms: int,
        end_ms: int,
        interval_ms: int | None = None,
        aggregation: Aggregation = "mean",
        limit: int | None = None,
    ) -> list[SeriesPoint]:
        flux = self._base(tenant, device, f"time(v: {start_ms}ms)", f"time(v: {end_ms}ms)")
        flux += f" |> filter(fn: (r) => r._field == {_flux_string(metric)})"
        if interval_ms is not None:
            flux += (
                f" |> aggregateWindow(every: {interval_ms}ms,"
                f' fn: {_FLUX_FUNCTION[aggregation]}, createEmpty: false, timeSrc: "_start")'
            )
        if limit is not None:
            flux += f" |> limit(n: {int(limit)})"
        rows = await self._query(flux)
        return [
            SeriesPoint(int(row.get_time().timestamp() * 1000), row.get_value()) for row in rows
        ]

    async def count(self, tenant: str, device: str) -> int:
        base = self._base(tenant, device, "0")
        rows = await self._query(
            f'{base} |> filter(fn: (r) => r._field != "_seq") |> group() |> count()'
        )
        return int(rows[0].get_value()) if rows else 0
