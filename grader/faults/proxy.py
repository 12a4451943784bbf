"""A TCP relay the gateway connects through, so the grader can cut the link.

`cut()` drops every relayed connection at once (the peer sees a reset, as when a cable
is pulled) and refuses new ones until `restore()`. The server behind stays up, so the
grader's own observer never misses a message and the broker publishes the gateway's
Last Will exactly as it would on a real network outage. TLS passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from iiotlab.lifecycle import Service

logger = logging.getLogger(__name__)
_CHUNK = 65536


class TcpFaultProxy(Service):
    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._down = False
        self.connections = 0  # accepted while up, for evidence

    @property
    def is_down(self) -> bool:
        return self._down

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._drop_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def cut(self) -> None:
        """Drop every connection and refuse new ones (accept-then-reset) until restore()."""
        self._down = True
        self._drop_all()

    def restore(self) -> None:
        self._down = False

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down or self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        pair = (
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        )
        self._tasks.update(pair)
        try:
            await asyncio.gather(*pair, return_exceptions=True)
        finally:
            self._tasks.difference_update(pair)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # the other side closed: close ours (half-close is not needed by MQTT/Modbus)
            writer.transport.abort()
