"""Live events for the UI: server-sent events from `GET /api/events`.

The ingest loop and the service (alarm changes) `publish` small events; every open event stream is a
`Subscription` with a bounded queue. Publishing never waits: a subscriber whose queue is
full loses events and gets one `resync` event when it has room again, which tells the UI
to fetch the lists once instead of trusting a stream with holes in it. A subscriber sees
only its scope's events (a student token: its own tenant).

Event kinds (the `event:` field; `data:` is JSON):
- `telemetry`: `{tenant, device, seq, ts, metrics}`, one per stored, non-duplicate message;
- `status`: `{tenant, device, online, ts}`;
- `alarms`: `{tenant}`: alarms of that tenant changed (raised, cleared, acknowledged);
- `dead_letters`: `{tenant, count}`: that many messages were dead-lettered;
- `resync`: `{}`: events were lost, fetch the lists again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 2000  # events a slow subscriber may fall behind before it must resync
HEARTBEAT_S = 15.0  # a comment line keeps proxies from closing an idle stream
RETRY_MS = 2000  # how soon an EventSource reconnects after the stream broke


@dataclass(frozen=True)
class Event:
    kind: str
    tenant: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """One SSE message; empty when the data is not JSON (then nothing is sent)."""
        try:
            body = json.dumps(self.data, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return b""
        return f"event: {self.kind}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscription:
    """One open stream: the tenant it may see (None = all) and its queue."""

    scope: str | None
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )  # None: the hub closed, end the stream
    lagged: bool = False
    dropped: int = 0

    def offer(self, event: Event) -> None:
        if self.scope is not None and event.tenant != self.scope:
            return
        if self.lagged and self.queue.qsize() < QUEUE_SIZE // 2:
            self.lagged = False
            self.queue.put_nowait(Event("resync", event.tenant, {"dropped": self.dropped}))
        if self.lagged:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            self.dropped += 1


class EventHub:
    """Fan-out of platform events to the open streams; cheap when nobody listens."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.closed = False

    @property
    def listening(self) -> bool:
        return bool(self._subscriptions)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, kind: str, tenant: str, data: dict[str, Any]) -> None:
        if not self._subscriptions:
            return
        event = Event(kind, tenant, data)
        for subscription in tuple(self._subscriptions):
            subscription.offer(event)

    def subscribe(self, scope: str | None) -> Subscription:
        subscription = Subscription(scope)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every open stream (the server is stopping: it waits for open responses)."""
        self.closed = True
        for subscription in tuple(self._subscriptions):
            with contextlib.suppress(asyncio.QueueFull):
                subscription.queue.put_nowait(None)
            if subscription.queue.full():  # a lagging reader: make room for the end
                subscription.queue.get_nowait()
                subscription.queue.put_nowait(None)

    async def stream(
        self, scope: str | None, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[bytes]:
        """The text/event-stream body of one subscriber; subscribed while it is read."""
        if self.closed:
            return
        subscription = self.subscribe(scope)
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            while True:
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                chunk: list[bytes] = []
                while event is not None:
                    chunk.append(event.encode())
                    if subscription.queue.empty() or len(chunk) >= 200:
                        break
                    event = subscription.queue.get_nowait()
                if chunk:
                    yield b"".join(chunk)
                if event is None:
                    return
        finally:
            self.unsubscribe(subscription)
