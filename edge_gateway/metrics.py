"""Gateway counters: logged on SIGUSR1 and served as Prometheus text on a local port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

logger = logging.getLogger(__name__)


@dataclass
class GatewayCounters:
    """Monotonic counters since the gateway started (dropped: since the buffer was made)."""

    read: int = 0  # tag values read from devices
    published: int = 0  # telemetry messages acknowledged by the broker
    buffered: int = 0  # telemetry messages written to the store-and-forward buffer
    dropped: int = 0  # messages lost to the buffer's overflow policy
    replayed: int = 0  # buffered messages sent after an outage
    reconnects: int = 0  # device and broker reconnections
    errors: int = 0  # read, write, publish and decode errors
    commands: int = 0  # commands received

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def summary(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.as_dict().items())


def prometheus_text(counters: GatewayCounters, gauges: dict[str, float], device: str) -> str:
    lines: list[str] = []
    label = f'{{device="{device}"}}'
    for name, value in counters.as_dict().items():
        metric = f"iiotlab_gateway_{name}_total"
        lines += [f"# TYPE {metric} counter", f"{metric}{label} {value}"]
    for name, gauge in gauges.items():
        metric = f"iiotlab_gateway_{name}"
        lines += [f"# TYPE {metric} gauge", f"{metric}{label} {gauge}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """A tiny HTTP server answering every GET with the Prometheus text."""

    def __init__(self, render: Callable[[], str], *, host: str = "127.0.0.1", port: int = 0):
        self._render = render
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            found = request.startswith(b"GET /metrics") or request.startswith(b"GET / ")
            body = self._render().encode() if found else b"not found\n"
            status = "200 OK" if found else "404 Not Found"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
