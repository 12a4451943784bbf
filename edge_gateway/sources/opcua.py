"""OPC UA source: a subscription with one monitored item per tag, deadbands in the server.

Each tag's `deadband` becomes a DataChangeFilter (absolute, or percent of the node's
EURange), so the server itself filters noise. Basic256Sha256 Sign/SignAndEncrypt with a
username works with a client certificate from the config, or one generated and kept in
`certificate_dir`. A lost session is reopened with backoff; meanwhile every tag is bad.
The only gateway module importing asyncua; nothing of asyncua leaves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from edge_gateway.config import OpcuaSourceConfig, TagConfig
from edge_gateway.metrics import GatewayCounters
from edge_gateway.sources.base import Backoff, CycleSink, SourceCycle, WriteError
from iiotlab.lifecycle import Service
from iiotlab.payloads import MetricValue

logger = logging.getLogger(__name__)

APPLICATION_URI = "urn:iiotlab:edge-gateway"
_SESSION_ERRORS = (UaError, OSError, TimeoutError, ConnectionError)


class _DataChangeHandler:
    """asyncua calls this on every notification; it hands a one-tag cycle to the sink."""

    def __init__(self, source: OpcuaSource) -> None:
        self._source = source

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self._source._notify(node, val, data)


class OpcuaSource(Service):
    def __init__(
        self,
        name: str,
        config: OpcuaSourceConfig,
        tags: Sequence[TagConfig],
        *,
        sink: CycleSink,
        counters: GatewayCounters | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._tags = {tag.name: tag for tag in tags}
        self._sink = sink
        self._counters = counters or GatewayCounters()
        self._client: Client | None = None
        self._names: dict[str, str] = {}  # node id string -> tag name
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, MetricValue | None] = {}
        self._pending_ts = 0

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"opcua {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    # -- session -----------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = Backoff(maximum=self.config.reconnect_max_s)
        ever_connected = False
        while True:
            try:
                await self._open()
            except _SESSION_ERRORS as exc:
                self._counters.errors += 1
                logger.warning("%s: cannot open a session: %s", self.name, exc or type(exc))
                await self._close()
                self._all_bad()
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            if ever_connected:
                self._counters.reconnects += 1
            ever_connected = True
            await self._watch()
            self._counters.errors += 1
            logger.warning("%s: session lost; reconnecting", self.name)
            await self._close()
            self._all_bad()

    async def _open(self) -> None:
        client = Client(self.config.endpoint, timeout=self.config.timeout_s)
        client.application_uri = APPLICATION_URI
        if self.config.username is not None:
            client.set_user(self.config.username)
            client.set_password(self.config.password or "")
        self._client = client
        if self.config.security_policy != "None":
            await self._secure(client)
        await client.connect()
        self._connected = True
        logger.info("%s: session open on %s", self.name, self.config.endpoint)
        await self._subscribe(client)

    async def _secure(self, client: Client) -> None:
        certificate, private_key = self.config.certificate, self.config.private_key
        if certificate is None or private_key is None:
            folder = self.config.certificate_dir or Path(".iiotlab-gateway-certs")
            certificate, private_key = await client.setup_self_signed_certificate(
                folder / "gateway-client-key.pem",
                folder / "gateway-client-cert.der",
                host_name=socket.gethostname(),
            )
        mode = getattr(ua.MessageSecurityMode, self.config.security_mode)
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(certificate), str(private_key), mode=mode
        )

    async def _subscribe(self, client: Client) -> None:
        handler = _DataChangeHandler(self)
        subscription = await client.create_subscription(self.config.publishing_interval_ms, handler)
        self._names.clear()
        tags = list(self._tags.values())
        for tag in tags:
            self._names[client.get_node(_node_id(tag)).nodeid.to_string()] = tag.name
        failed = await self._monitor(client, subscription, tags, with_filter=True)
        # A server without EURange (percent) or deadband support refuses the filter; the
        # gateway's own deadband (reporting.py) still applies, so monitor those unfiltered.
        retry = [tag for tag in failed if tag.deadband is not None]
        for tag in await self._monitor(client, subscription, retry, with_filter=False):
            self._counters.errors += 1
            logger.warning("%s: cannot monitor %s (%s)", self.name, tag.name, tag.node_id)

    async def _monitor(
        self, client: Client, subscription: Any, tags: list[TagConfig], *, with_filter: bool
    ) -> list[TagConfig]:
        """Create monitored items; the tags the server refused."""
        if not tags:
            return []
        requests = [
            subscription._make_monitored_item_request(
                client.get_node(_node_id(tag)),
                AttributeIds.Value,
                _deadband_filter(tag) if with_filter else None,
                1,
                ua.MonitoringMode.Reporting,
                self.config.sampling_interval_ms,
            )
            for tag in tags
        ]
        results = await subscription.create_monitored_items(requests)
        return [
            tag
            for tag, result in zip(tags, results, strict=True)
            if isinstance(result, ua.StatusCode)
        ]

    async def _watch(self) -> None:
        """Return when the session is gone."""
        client = self._client
        assert client is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                await client.check_connection()
            except _SESSION_ERRORS:
                return

    async def _close(self) -> None:
        self._connected = False
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_SESSION_ERRORS, asyncio.TimeoutError):
                await asyncio.wait_for(client.disconnect(), 3)

    # -- data ------------------------------------------------------------------------
    def _notify(self, node: Node, value: Any, data: Any) -> None:
        name = self._names.get(node.nodeid.to_string())
        if name is None:
            return
        data_value = data.monitored_item.Value
        good = data_value.StatusCode is None or data_value.StatusCode.is_good()
        converted = _metric_value(value) if good else None
        stamp = data_value.SourceTimestamp or data_value.ServerTimestamp
        ts_ms = int(stamp.timestamp() * 1000) if stamp is not None else int(time.time() * 1000)
        if converted is not None:
            self._counters.read += 1
        # One publish response brings many notifications, one call each: batch them into
        # one cycle (one telemetry message), flushed once the response is handled.
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending[name] = converted
        self._pending_ts = max(self._pending_ts, ts_ms)

    def _flush(self) -> None:
        values, self._pending = self._pending, {}
        ts_ms, self._pending_ts = self._pending_ts, 0
        if values:
            self._sink(SourceCycle(self.name, ts_ms, values))

    def _all_bad(self) -> None:
        self._sink(SourceCycle(self.name, int(time.time() * 1000), dict.fromkeys(self._tags)))

    async def write(self, tag: str, value: MetricValue) -> None:
        config = self._tags.get(tag)
        client = self._client
        if config is None or config.node_id is None:
            raise WriteError(f"tag {tag!r} is not read from {self.name}")
        if client is None or not self._connected:
            raise WriteError(f"{self.name} has no OPC UA session")
        node = client.get_node(config.node_id)
        try:
            variant_type = await node.read_data_type_as_variant_type()
            await node.write_value(
                ua.DataValue(ua.Variant(_coerce(value, variant_type), variant_type))
            )
        except UaStatusCodeError as exc:
            raise WriteError(f"server refused the write: {exc}") from None
        except _SESSION_ERRORS as exc:
            raise WriteError(f"write failed: {exc}") from None


def _deadband_filter(tag: TagConfig) -> ua.DataChangeFilter | None:
    if tag.deadband is None:
        return None
    flt = ua.DataChangeFilter()
    flt.Trigger = ua.DataChangeTrigger.StatusValue
    if tag.deadband.absolute is not None:
        flt.DeadbandType = ua.DeadbandType.Absolute
        flt.DeadbandValue = tag.deadband.absolute
    else:
        flt.DeadbandType = ua.DeadbandType.Percent
        flt.DeadbandValue = tag.deadband.percent or 0.0
    return flt


def _metric_value(value: Any) -> MetricValue | None:
    if isinstance(value, bool | int | float | str):
        return value
    return None


def _coerce(value: MetricValue, variant_type: ua.VariantType) -> Any:
    if variant_type == ua.VariantType.Boolean:
        return bool(value)
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        return float(value)
    if variant_type == ua.VariantType.String:
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        raise WriteError(f"{value!r} is not a whole number for a {variant_type.name} node")
    return int(value)


def _node_id(tag: TagConfig) -> str:
    if tag.node_id is None:
        raise ValueError(f"tag {tag.name!r} has no node_id")
    return tag.node_id
