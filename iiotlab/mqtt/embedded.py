"""EmbeddedBroker: an amqtt broker in this process, the zero-set-up default."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from amqtt.broker import Broker as AmqttBroker
from amqtt.session import Session

from iiotlab.lifecycle import Service
from iiotlab.mqtt.broker import BrokerAddressMixin, BrokerConfig
from iiotlab.mqtt.errors import BrokerStartError

_PLUGINS = "iiotlab.mqtt.amqtt_plugins"
_STOP_TIMEOUT_S = 10.0
# How long a closing connection may take to hand its acknowledged messages on: a safety
# net; amqtt's loop hands on over a thousand a second (270 in 0.16 s on a busy 2-core box).
_DRAIN_TIMEOUT_S = 30.0
_DRAIN_POLL_S = 0.001
_log = logging.getLogger(__name__)


class _SnapshotDict(dict[str, Any]):
    """A dict whose iteration walks a snapshot.

    amqtt 0.12 iterates its subscription table across awaits (broadcast, retained
    replay); a client subscribing meanwhile raised "dictionary changed size during
    iteration" inside the broadcast task, and the message was lost for the remaining
    subscribers. Iterating a snapshot keeps the broadcast going.
    """

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> Any:
        return list(super().items())

    def keys(self) -> Any:
        return list(super().keys())


class _DeliveryWatch:
    """Tells when amqtt's client loop has handed every received PUBLISH to the broadcast.

    amqtt acknowledges a PUBLISH once it is in the session's ``delivered_message_queue``;
    the client loop (``Broker._client_message_loop``) takes them out one per turn. The
    loop is caught up when that queue is empty and it waits for the next message: the
    one it took before has been broadcast by then.
    """

    def __init__(self, session: Session, handler: Any, is_current: Callable[[], bool]) -> None:
        self._queue: asyncio.Queue[Any] = session.delivered_message_queue
        self._next_message = handler.mqtt_deliver_next_message
        self._is_current = is_current
        self._waiting = False
        self.finished = False

    async def next_message(self) -> Any:
        """Stands in for the handler's ``mqtt_deliver_next_message``."""
        self._waiting = True
        try:
            return await self._next_message()
        finally:
            self._waiting = False

    async def until_caught_up(self) -> None:
        """Return once every queued message went on, or the loop ended or was taken over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_TIMEOUT_S
        while not self.finished and self._is_current():
            if self._waiting and self._queue.empty():
                return
            if loop.time() > deadline:
                _log.warning(
                    "amqtt: %d acknowledged messages not delivered within %s s",
                    self._queue.qsize(),
                    _DRAIN_TIMEOUT_S,
                )
                return
            await asyncio.sleep(_DRAIN_POLL_S)


class _LabAmqttBroker(AmqttBroker):  # type: ignore[misc]
    """amqtt with four fixes — the subscription table (see _SnapshotDict), acknowledged
    messages lost on disconnect (see _client_message_loop), retained messages on
    connect, replaying a persistent session's offline queue — and a message size limit.

    On every connect amqtt 0.12 sends the retained messages of *every* filter in the
    broker's subscription table, whoever subscribed it, without an ACL check: a student
    saw other tenants' retained status. Here a session gets the retained messages of its
    own subscriptions only.

    amqtt 0.12 sends the queued messages all at once with the *retain* flag set. Sent
    concurrently, PUBACKs race amqtt's waiter registration ("PUBACK for unknown pending
    message", then a 5 s timeout that holds up the client's session), and the retain flag
    is wrong (MQTT 3.1.1 sets it only for messages sent because of a new subscription).
    Here they go one by one, in order, retain=False.
    """

    def __init__(
        self,
        *args: Any,
        require_client_cert: bool = False,
        max_message_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _SnapshotDict(self._subscriptions)  # type: ignore[has-type]
        self._require_client_cert = require_client_cert
        self._max_message_bytes = max_message_bytes
        self._delivery_watches: dict[str, _DeliveryWatch] = {}

    async def _client_message_loop(self, client_session: Session, handler: Any) -> None:
        """amqtt's loop, told of the disconnect only once it has broadcast every message
        the client sent (amqtt dropped the ones still queued: issue #12)."""
        client_id = client_session.client_id
        watch = _DeliveryWatch(
            client_session, handler, lambda: self._handler_of(client_id) is handler
        )
        wait_disconnect = handler.wait_disconnect

        async def wait_disconnect_after_delivery() -> Any:
            result = await wait_disconnect()
            await watch.until_caught_up()
            return result

        handler.mqtt_deliver_next_message = watch.next_message
        handler.wait_disconnect = wait_disconnect_after_delivery
        self._delivery_watches[client_id] = watch
        try:
            await super()._client_message_loop(client_session, handler)
        finally:
            watch.finished = True
            if self._delivery_watches.get(client_id) is watch:
                del self._delivery_watches[client_id]

    async def _delete_session(self, client_id: str) -> None:
        """A clean-session CONNECT empties the old session's queue: deliver it first."""
        watch = self._delivery_watches.get(client_id)
        if watch is not None:
            await watch.until_caught_up()
        await super()._delete_session(client_id)

    async def _handle_message_delivery(
        self, client_session: Session, handler: Any, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        """Drop a message over the size limit (already acknowledged, as Mosquitto does)."""
        message = wait_deliver.result()
        limit = self._max_message_bytes
        if message is not None and limit is not None and len(message.data) > limit:
            _log.warning(
                "dropped a %d-byte message from client %r on %r: over the broker's "
                "%d-byte limit (max_message_bytes)",
                len(message.data),
                client_session.client_id,
                message.topic,
                limit,
            )
            return True
        handled: bool = await super()._handle_message_delivery(
            client_session, handler, wait_deliver
        )
        return handled

    def _handler_of(self, client_id: str) -> Any:
        return self._sessions.get(client_id, (None, None))[1]

    def _create_ssl_context(self, listener: Any) -> ssl.SSLContext:
        """amqtt asks for a client certificate but accepts none (CERT_OPTIONAL)."""
        context: ssl.SSLContext = AmqttBroker._create_ssl_context(listener)
        if self._require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        holders = self._subscriptions.get(subscription[0], [])
        if any(holder.client_id == session.client_id for holder, _ in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)

    async def _publish_session_retained_messages(self, session: Session) -> None:
        handler = self._get_handler(session)
        if handler is None:
            return
        while not session.retained_messages.empty():
            queued = await session.retained_messages.get()
            await handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)


class EmbeddedBroker(BrokerAddressMixin, Service):
    """amqtt 0.12 (MQTT 3.1.1) on ``config.host``; users, tenant ACL and TLS from ``config``.

    Port 0 binds an ephemeral port, read back from the listening socket. The first start
    fixes the ports, so stop() then start() serves on the same ports again. Every start
    begins empty: no retained messages, no sessions (as Mosquitto with persistence off).
    """

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()
        self._port = self.config.port if self.config.plaintext else 0
        self._tls_port = self.config.tls_port if self.config.tls is not None else None
        if self.config.tls is not None and self._tls_port is None:
            self._tls_port = 0
        self._broker: _LabAmqttBroker | None = None

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        """Open the listeners; raises BrokerStartError (e.g. port in use)."""
        if self._broker is not None:
            return
        broker = _LabAmqttBroker(
            self._amqtt_config(),
            require_client_cert=self.config.require_client_cert,
            max_message_bytes=self.config.max_message_bytes,
        )
        try:
            await broker.start()
        except Exception as error:  # amqtt wraps everything in its BrokerError
            cause = error.__cause__ or error
            raise BrokerStartError(
                f"embedded MQTT broker could not start on {self.host} "
                f"(port {self._port}, TLS port {self._tls_port}): {cause}"
            ) from error
        self._broker = broker
        self._read_bound_ports(broker)

    async def stop(self) -> None:
        """Close every client connection and the listeners. Safe to call twice."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        try:
            await asyncio.wait_for(broker.shutdown(), _STOP_TIMEOUT_S)
        except TimeoutError:
            logging.getLogger(__name__).warning("amqtt shutdown took over %s s", _STOP_TIMEOUT_S)

    def _amqtt_config(self) -> dict[str, Any]:
        listeners: dict[str, dict[str, Any]] = {}
        if self.config.plaintext:
            listeners["default"] = {"type": "tcp", "bind": f"{self.host}:{self._port}"}
        tls = self.config.tls
        if tls is not None:
            listeners["default" if not listeners else "tls"] = {
                "type": "tcp",
                "bind": f"{self.host}:{self._tls_port}",
                "ssl": True,
                "cafile": str(tls.ca_file),
                "certfile": str(tls.cert_file),
                "keyfile": str(tls.key_file),
            }
        users = {user.username: user.password for user in self.config.users}
        filters = {user.username: user.topic_filter for user in self.config.users}
        return {
            "listeners": listeners,
            "plugins": {
                f"{_PLUGINS}.UserPasswordAuthPlugin": {
                    "users": users,
                    "allow_anonymous": self.config.anonymous_allowed,
                },
                f"{_PLUGINS}.TenantTopicPlugin": {"filters": filters},
            },
        }

    def _read_bound_ports(self, broker: _LabAmqttBroker) -> None:
        # amqtt keeps its asyncio servers private; the bound port is only readable there.
        for name, server in broker._servers.items():
            sockets = getattr(server.instance, "sockets", None) or ()
            if not sockets:
                continue
            port = int(sockets[0].getsockname()[1])
            is_tls = name == "tls" or (name == "default" and not self.config.plaintext)
            if is_tls:
                self._tls_port = port
            else:
                self._port = port
