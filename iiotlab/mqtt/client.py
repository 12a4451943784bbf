"""MqttClient: the one asyncio wrapper around paho-mqtt (the only module importing paho).

Each connection is a fresh paho client driven by the asyncio loop itself (paho's external
loop: the loop calls ``loop_read`` when the socket is readable, ``loop_write`` while paho
has bytes to send, ``loop_misc`` once a second for keepalive). No network thread: a
publish, its PUBACK and a received message cost no hand-off between threads. Only the
blocking ``connect`` (TCP and TLS handshake) and the final disconnect run in a worker
thread, while the loop does not watch that client. Reconnection is ours, not
paho's: a lost connection fails the publishes still waiting for PUBACK (the caller keeps
them and retries), then a backoff loop opens a new connection and subscribes again.
Protocol: MQTT 3.1.1 (amqtt speaks nothing newer); ``clean_start`` is its clean-session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from iiotlab.errors import ConfigError
from iiotlab.mqtt.errors import MqttConnectError, MqttNotConnectedError, MqttSubscribeError
from iiotlab.mqtt.url import MqttEndpoint, parse_mqtt_url

_log = logging.getLogger(__name__)
_SUBACK_WAIT_S = 10.0
_READ_BURST = 256  # packets read in one turn of the loop at most
_BAD_CREDENTIALS = {134, 135}  # paho's codes for CONNACK 4 (bad user/password) and 5
ConnectionCallback = Callable[[bool], None]


@dataclass(frozen=True)
class MqttMessage:
    """A received message; ``received_ms`` is the local epoch-ms time of arrival."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_ms: int


class MqttClient:
    """An MQTT 3.1.1 client for asyncio: QoS 1 publishes resolve on PUBACK.

    ``will`` is ``(topic, payload, qos, retain)``. With ``auto_reconnect`` a lost connection
    is reopened with exponential backoff between ``reconnect_min_delay`` and
    ``reconnect_max_delay`` seconds; subscriptions are renewed. ``on_connection_change``
    callbacks see every drop (False) and every re-connection (True).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        clean_start: bool = True,
        keepalive: int = 10,
        auto_reconnect: bool = True,
        reconnect_min_delay: float = 0.2,
        reconnect_max_delay: float = 5.0,
        max_inflight: int = 100,
    ) -> None:
        self.endpoint: MqttEndpoint = parse_mqtt_url(url)
        self.client_id = client_id
        self.ca_file = ca_file
        if (cert_file is None) != (key_file is None):
            raise ConfigError(
                "a client certificate needs its key, and a key its certificate",
                key="cert_file" if cert_file is None else "key_file",
                value=str(cert_file or key_file),
                expected="both cert_file and key_file, or neither",
            )
        self.cert_file, self.key_file = cert_file, key_file
        self.will = will
        self.clean_start = clean_start
        self.keepalive = keepalive
        self.auto_reconnect = auto_reconnect
        self.reconnect_min_delay = reconnect_min_delay
        self.reconnect_max_delay = reconnect_max_delay
        # QoS 1/2 publishes paho sends before it queues the rest; 0 = no limit, for a
        # caller that bounds its own window (paho rescans every message at each PUBACK
        # when there is a limit: the gateway's drain ran ~40% faster without it)
        self.max_inflight = max_inflight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paho: paho.Client | None = None
        self._generation = 0
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._connected = False
        self._announced = False
        self._closing = False
        self._publishes: dict[int, asyncio.Future[None]] = {}
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._subscriptions: dict[str, int] = {}
        self._messages: asyncio.Queue[MqttMessage | None] = asyncio.Queue()
        self._callbacks: list[ConnectionCallback] = []
        self._reconnect_task: asyncio.Task[None] | None = None
        self._cleanups: set[asyncio.Future[None]] = set()
        self._timers: dict[paho.Client, asyncio.TimerHandle] = {}  # loop_misc, per client

    @property
    def connected(self) -> bool:
        return self._connected

    def on_connection_change(self, callback: ConnectionCallback) -> None:
        """Call ``callback(connected)`` on the event loop at every drop and re-connection."""
        self._callbacks.append(callback)

    async def __aenter__(self) -> MqttClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def connect(self, timeout: float = 10) -> None:  # noqa: ASYNC109 (agreed API)
        """Connect once (no retry); MqttConnectError says why it failed."""
        if self._connected:
            return
        self._loop = asyncio.get_running_loop()
        if self._closing:
            self._closing = False
            self._messages = asyncio.Queue()
        await self._open(timeout)
        self._set_connected(True)

    async def disconnect(self) -> None:
        """Send DISCONNECT (no Last Will) and stop reconnecting. Safe to call twice."""
        await self._close(graceful=True)

    async def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a crash would: the broker sends
        the Last Will. The client stays closed (no reconnection)."""
        await self._close(graceful=False)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish; with QoS 1/2 return once the broker acknowledged it.

        Raises MqttNotConnectedError at once when there is no connection, and
        MqttConnectError when the connection drops before the acknowledgement (the
        message may or may not have reached the broker).
        """
        client = self._require_connection(f"publish to {topic!r}")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttNotConnectedError(
                f"cannot publish to {topic!r} on {self.endpoint.display()}: "
                f"{paho.error_string(info.rc)}"
            )
        done = self._require_loop().create_future()
        self._publishes[info.mid] = done
        try:
            await done
        finally:
            self._publishes.pop(info.mid, None)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe; MqttSubscribeError when the broker refuses (SUBACK 0x80, e.g. ACL)."""
        codes = await self._send_subscribe(topic_filter, qos, _SUBACK_WAIT_S)
        if not codes or codes[0].is_failure:
            reason = str(codes[0]) if codes else "no reason code"
            raise MqttSubscribeError(
                f"broker {self.endpoint.display()} refused the subscription to "
                f"{topic_filter!r} ({reason}); the user may only use the topics its ACL "
                "allows (a tenant user: iiot/<tenant>/#)"
            )
        self._subscriptions[topic_filter] = qos

    async def messages(self) -> AsyncIterator[MqttMessage]:
        """Received messages, in order, until disconnect(). One consumer at a time."""
        queue = self._messages
        while (message := await queue.get()) is not None:
            yield message

    # -- connection lifecycle -------------------------------------------------------

    async def _open(self, wait_s: float) -> None:
        loop = self._require_loop()
        self._generation += 1
        client = self._new_paho(self._generation, wait_s)
        self._connack = connack = loop.create_future()
        job = loop.run_in_executor(None, self._start_blocking, client)
        try:
            await asyncio.shield(job)
            self._attach(client)
            reason = await asyncio.wait_for(connack, wait_s)
        except BaseException as error:
            self._connack = None
            if connack.done() and not connack.cancelled():
                connack.exception()  # retrieved: the error raised here says it already
            connack.cancel()
            job.add_done_callback(lambda _: self._discard(client))
            if isinstance(error, (asyncio.CancelledError, MqttConnectError)):
                raise
            raise self._connect_error(error, wait_s) from error
        self._connack = None
        if reason.is_failure:
            self._discard(client)
            hint = ""
            if reason.value in _BAD_CREDENTIALS:
                hint = "; check the user name and password in the URL (mqtt://user:pass@host:port)"
            raise MqttConnectError(
                f"broker {self.endpoint.display()} refused the connection: {reason}{hint}"
            )
        self._paho = client

    def _start_blocking(self, client: paho.Client) -> None:
        client.connect(self.endpoint.host, self.endpoint.port, keepalive=self.keepalive)

    def _attach(self, client: paho.Client) -> None:
        """Let the loop drive this client's socket (paho's external loop), in the loop."""
        loop = self._require_loop()
        sock = client.socket()
        if sock is None:  # paho closed it while sending CONNECT: the broker hung up at once
            raise MqttConnectError(
                f"{self.endpoint.display()} closed the connection before CONNACK; "
                f"{self._early_close_hint()}"
            )

        waiting = _Waiting(sock)

        def readable() -> None:
            # paho's loop_read takes about one packet: read on while bytes are waiting (in
            # the kernel, or decrypted inside the SSL object, where epoll does not see them)
            for _ in range(_READ_BURST):
                if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return
                if client.socket() is not sock or not waiting():
                    return

        def writable() -> None:
            client.loop_write()

        def flush() -> None:
            # paho queued packets (publishes, PUBACKs): write them once, after this turn of
            # the loop; watch the socket for room only when it is full
            sock = client.socket()
            if sock is None or self._timers.get(client) is None:
                return
            client.loop_write()
            if client.want_write() and client.socket() is not None:
                loop.add_writer(sock, writable)

        def register_write(_c: object, _u: object, sock: Any) -> None:
            loop.call_soon(flush)

        def unregister_write(_c: object, _u: object, sock: Any) -> None:
            loop.remove_writer(sock)

        def closed(_c: object, _u: object, sock: Any) -> None:
            loop.remove_reader(sock)
            loop.remove_writer(sock)

        def misc() -> None:
            if client.socket() is not None and self._timers.get(client) is not None:
                client.loop_misc()
                self._timers[client] = loop.call_later(1.0, misc)

        client.on_socket_register_write = register_write
        client.on_socket_unregister_write = unregister_write
        client.on_socket_close = closed
        loop.add_reader(sock, readable)
        if client.want_write():  # the CONNECT did not fit in the socket's buffer
            loop.add_writer(sock, writable)
        self._timers[client] = loop.call_later(1.0, misc)

    def _detach(self, client: paho.Client) -> None:
        """The loop stops driving this client (before a worker thread closes it)."""
        timer = self._timers.pop(client, None)
        if timer is not None:
            timer.cancel()
        client.on_socket_register_write = None
        client.on_socket_unregister_write = None
        client.on_socket_close = None
        sock = client.socket()
        if sock is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    def _connect_error(self, error: BaseException, timeout: float) -> MqttConnectError:
        where = self.endpoint.display()
        if isinstance(error, ssl.SSLCertVerificationError):
            return MqttConnectError(
                f"TLS: the certificate of {where} is not trusted ({error.verify_message}); "
                f"pass the CA that signed it as ca_file (now {self.ca_file})"
            )
        if isinstance(error, ssl.SSLError):
            return MqttConnectError(
                f"TLS handshake with {where} failed ({error.reason}); is that port a TLS "
                "listener (mqtts://) or a plaintext one (mqtt://)?"
            )
        if isinstance(error, ConnectionRefusedError):
            return MqttConnectError(f"cannot reach {where}: connection refused (broker down?)")
        if isinstance(error, socket.gaierror):
            return MqttConnectError(f"cannot resolve host of {where}: {error}")
        if isinstance(error, TimeoutError):
            return MqttConnectError(f"no answer from {where} within {timeout} s")
        return MqttConnectError(f"cannot connect to {where}: {error!r}")

    async def _close(self, *, graceful: bool) -> None:
        self._closing = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._paho = self._paho, None
        if client is not None:
            if not graceful:
                _shutdown_socket(client)
            self._discard(client)
        self._fail_pending("the client was closed")
        if self._connected:
            self._set_connected(False)
        self._messages.put_nowait(None)
        cleanups = list(self._cleanups)
        if cleanups:
            await asyncio.gather(*cleanups, return_exceptions=True)

    def _discard(self, client: paho.Client) -> None:
        """Stop driving a paho client, then close it in a worker thread."""
        self._detach(client)
        job = self._require_loop().run_in_executor(None, _stop_blocking, client)
        self._cleanups.add(job)
        job.add_done_callback(self._cleanups.discard)

    async def _reconnect(self) -> None:
        delay = self.reconnect_min_delay
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._open(max(5.0, delay))
            except MqttConnectError as error:
                _log.info("reconnect to %s failed: %s", self.endpoint.display(), error)
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            self._connected = True
            await self._resubscribe()
            if self._paho is None:  # lost again while renewing the subscriptions
                continue
            self._set_connected(True)
            return

    async def _resubscribe(self) -> None:
        for topic_filter, qos in list(self._subscriptions.items()):
            try:
                await self._send_subscribe(topic_filter, qos, _SUBACK_WAIT_S)
            except MqttConnectError as error:
                _log.warning("renewing subscription %r failed: %s", topic_filter, error)
                return

    async def _send_subscribe(self, topic_filter: str, qos: int, wait_s: float) -> list[ReasonCode]:
        client = self._require_connection(f"subscribe to {topic_filter!r}")
        result, mid = client.subscribe(topic_filter, qos)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttNotConnectedError(
                f"cannot subscribe to {topic_filter!r}: {paho.error_string(result)}"
            )
        suback = self._require_loop().create_future()
        self._subacks[mid] = suback
        try:
            return await asyncio.wait_for(suback, wait_s)
        except TimeoutError as error:
            raise MqttConnectError(
                f"no SUBACK for {topic_filter!r} from {self.endpoint.display()} within {wait_s} s"
            ) from error
        finally:
            self._subacks.pop(mid, None)

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        if connected == self._announced:
            return
        self._announced = connected
        for callback in list(self._callbacks):
            try:
                callback(connected)
            except Exception:
                _log.exception("on_connection_change callback failed")

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise MqttNotConnectedError("call connect() first")
        return self._loop

    def _require_connection(self, action: str) -> paho.Client:
        if self._paho is None or not self._connected:
            raise MqttNotConnectedError(
                f"cannot {action}: not connected to {self.endpoint.display()}"
            )
        return self._paho

    def _fail_pending(self, reason: str) -> None:
        for mid, waiter in list(self._publishes.items()) + list(self._subacks.items()):
            if not waiter.done():
                waiter.set_exception(
                    MqttConnectError(f"{reason} before the broker acknowledged packet {mid}")
                )
                # A publish nobody awaits any more must not log "exception never retrieved".
                waiter.exception()
        self._publishes.clear()
        self._subacks.clear()

    # -- paho callbacks → event loop ---------------------------------------------------

    def _new_paho(self, generation: int, timeout: float) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self.clean_start,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        client.connect_timeout = timeout
        client.max_inflight_messages_set(self.max_inflight)
        if self.endpoint.username is not None:
            client.username_pw_set(self.endpoint.username, self.endpoint.password)
        if self.endpoint.tls:
            self._set_tls(client)
        if self.will is not None:
            topic, payload, qos, retain = self.will
            client.will_set(topic, payload, qos=qos, retain=retain)
        self._bind_callbacks(client, generation)
        return client

    def _set_tls(self, client: paho.Client) -> None:
        try:
            client.tls_set(
                ca_certs=str(self.ca_file) if self.ca_file else None,
                certfile=str(self.cert_file) if self.cert_file else None,
                keyfile=str(self.key_file) if self.key_file else None,
            )
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(
                f"the TLS files do not load: {error}",
                key="cert_file" if self.cert_file else "ca_file",
                value=str(self.cert_file or self.ca_file),
                expected="PEM files: a CA certificate, a client certificate and its matching key",
            ) from None

    def _bind_callbacks(self, client: paho.Client, generation: int) -> None:
        loop_thread = threading.get_ident()  # paho calls back here, or from a worker thread

        def to_loop(handler: Callable[..., None], *args: Any) -> None:
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            if threading.get_ident() == loop_thread:
                loop.call_soon(handler, generation, *args)
                return
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(handler, generation, *args)

        client.on_connect = lambda _c, _u, _f, reason, _p: to_loop(self._handle_connack, reason)
        client.on_disconnect = lambda _c, _u, _f, reason, _p: to_loop(
            self._handle_disconnect, reason
        )

        def batched(handler: Callable[..., None]) -> Callable[[Any], None]:
            """Hand items to `handler` in batches, in order: one loop callback for all
            that arrived meanwhile, not one each (PUBACKs: a 1,000-message window drained
            ~20% faster)."""
            items: list[Any] = []
            lock = threading.Lock()

            def add(item: Any) -> None:
                with lock:
                    items.append(item)
                    first = len(items) == 1
                if first:
                    to_loop(handler, items, lock)

            return add

        ack = batched(self._handle_pubacks)
        receive = batched(self._handle_messages)
        client.on_publish = lambda _c, _u, mid, _r, _p: ack(mid)
        client.on_subscribe = lambda _c, _u, mid, codes, _p: to_loop(
            self._handle_suback, mid, list(codes)
        )
        client.on_message = lambda _c, _u, message: receive(
            MqttMessage(
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                retain=bool(message.retain),
                received_ms=time.time_ns() // 1_000_000,
            )
        )

    def _handle_connack(self, generation: int, reason: ReasonCode) -> None:
        if generation == self._generation and self._connack and not self._connack.done():
            self._connack.set_result(reason)

    def _early_close_hint(self) -> str:
        if not self.endpoint.tls:
            return "is this a TLS port reached with mqtt://?"
        if self.cert_file is None:
            return (
                "the broker may require a client certificate (mutual TLS): pass cert_file "
                "and key_file"
            )
        return (
            f"the broker may not accept the client certificate {self.cert_file} "
            "(signed by a CA it does not trust?)"
        )

    def _handle_disconnect(self, generation: int, reason: ReasonCode) -> None:
        if generation != self._generation:
            return
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(
                MqttConnectError(
                    f"{self.endpoint.display()} closed the connection before CONNACK "
                    f"({reason}); {self._early_close_hint()}"
                )
            )
            return
        if self._paho is None or self._closing:
            return
        _log.info("connection to %s lost: %s", self.endpoint.display(), reason)
        self._discard(self._paho)
        self._paho = None
        self._fail_pending("the connection was lost")
        self._set_connected(False)
        if self.auto_reconnect and self._reconnect_task is None:
            self._reconnect_task = asyncio.create_task(self._reconnect_then_forget())

    async def _reconnect_then_forget(self) -> None:
        try:
            await self._reconnect()
        finally:
            if self._reconnect_task is asyncio.current_task():
                self._reconnect_task = None

    def _handle_pubacks(self, generation: int, acks: list[int], lock: threading.Lock) -> None:
        with lock:
            mids = acks[:]
            acks.clear()
        for mid in mids:
            self._handle_puback(generation, mid)

    def _handle_puback(self, generation: int, mid: int) -> None:
        waiter = self._publishes.get(mid) if generation == self._generation else None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _handle_suback(self, generation: int, mid: int, codes: list[ReasonCode]) -> None:
        waiter = self._subacks.get(mid) if generation == self._generation else None
        if waiter is not None and not waiter.done():
            waiter.set_result(codes)

    def _handle_messages(
        self, generation: int, inbox: list[MqttMessage], lock: threading.Lock
    ) -> None:
        with lock:
            messages = inbox[:]
            inbox.clear()
        if not self._closing:
            for message in messages:
                self._messages.put_nowait(message)


def _stop_blocking(client: paho.Client) -> None:
    # Nothing drives the client any more: paho writes the DISCONNECT itself, at once.
    client.disconnect()
    sock = client.socket()
    if sock is not None:
        sock.close()


class _Waiting:
    """Whether bytes wait to be read on one socket, without blocking: decrypted inside the
    SSL object, or in the kernel. One poll object per socket, asked once per packet."""

    def __init__(self, sock: Any) -> None:
        self._ssl = sock if isinstance(sock, ssl.SSLSocket) else None
        self._poller = select.poll()  # not select(): no limit on the descriptor's number
        self._poller.register(sock, select.POLLIN)

    def __call__(self) -> bool:
        if self._ssl is not None and self._ssl.pending() > 0:
            return True
        try:
            return bool(self._poller.poll(0))
        except (OSError, ValueError):  # closed meanwhile
            return False


def _shutdown_socket(client: paho.Client) -> None:
    sock = client.socket()
    if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
