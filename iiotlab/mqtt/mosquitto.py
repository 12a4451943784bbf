"""MosquittoBroker: the Debian ``mosquitto`` binary with a generated configuration.

Mosquitto cannot report the port it bound, so a free port is picked first (bind to 0,
close, reuse the number) and the start is retried on a clash. The first start fixes the
ports: stop() then start() serves on the same ports again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from iiotlab.lifecycle import Service
from iiotlab.mqtt.broker import BrokerAddressMixin, BrokerConfig, BrokerUser, pick_free_port
from iiotlab.mqtt.errors import BrokerStartError

_START_ATTEMPTS = 5
_READY_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
_PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes for "$7$"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Mosquitto's defaults (20 in flight, 1000 queued, per client) drop QoS 1 messages when a
# subscriber lags or is offline; a lab must lose nothing a gateway published correctly.
# Without set_tcp_nodelay, Nagle's algorithm holds small PUBACKs back and a QoS 1 stream
# stalls near 2,000 msg/s (measured by bench/gateway_throughput.py).
_LIMITS = """\
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
persistence false
max_queued_messages 100000
max_queued_bytes 0
max_inflight_messages 1000
max_inflight_bytes 0
"""


def find_mosquitto() -> Path | None:
    """The mosquitto binary (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child SIGTERM when this process dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``); None elsewhere.

    The kernel watches the thread that forks: the event loop's thread, which outlives
    the broker. prctl is looked up here, before the fork, so the child runs no import.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def mosquitto_password_line(username: str, password: str) -> str:
    """A password-file line in Mosquitto 2's PBKDF2-SHA512 format, as mosquitto_passwd."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return f"{username}:$7${_PBKDF2_ITERATIONS}${encoded_salt}${encoded_digest}"


def acl_text(users: tuple[BrokerUser, ...]) -> str:
    """The ACL file: anonymous clients (when allowed) and admins get every topic,
    tenant users ``iiot/<tenant>/#``."""
    lines = ["# anonymous clients", "topic readwrite #", ""]
    for user in users:
        lines += [f"user {user.username}", f"topic readwrite {user.topic_filter}", ""]
    return "\n".join(lines)


class MosquittoBroker(BrokerAddressMixin, Service):
    """Mosquitto as a subprocess; users, tenant ACL and TLS from ``config``."""

    def __init__(self, config: BrokerConfig | None = None, *, binary: Path | None = None) -> None:
        self.config = config or BrokerConfig()
        self.binary = binary or find_mosquitto()
        self._port = self.config.port if self.config.plaintext else 0
        self._tls_port = None
        if self.config.tls is not None:
            self._tls_port = self.config.tls_port or 0
        self._ports_fixed = False
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def log_file(self) -> Path | None:
        """Mosquitto's own log of the current or last run."""
        return Path(self._directory.name) / "mosquitto.log" if self._directory else None

    async def start(self) -> None:
        """Spawn mosquitto and wait until its listeners accept connections."""
        if self.running:
            return
        if self.binary is None:
            raise BrokerStartError(
                "the mosquitto binary was not found; install the Debian package 'mosquitto' "
                "or use the embedded broker"
            )
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(prefix="iiotlab-mosquitto-")
        last_error = ""
        for _attempt in range(_START_ATTEMPTS):
            requested = self._choose_ports()
            self._write_files(Path(self._directory.name))
            last_error = await self._spawn_and_wait(Path(self._directory.name))
            if not last_error:
                self._ports_fixed = True
                return
            if self._ports_fixed or not requested:
                await asyncio.sleep(0.3)  # a fixed port may still be held; wait and retry
        raise BrokerStartError(
            f"mosquitto could not start on {self.host} (port {self._port}, "
            f"TLS port {self._tls_port}): {last_error}"
        )

    async def stop(self) -> None:
        """Terminate mosquitto and wait for it. Safe to call twice."""
        process, self._process = self._process, None
        try:
            if process is not None and process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    async def close(self) -> None:
        """stop() and delete the generated files (ports are forgotten)."""
        await self.stop()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def _choose_ports(self) -> bool:
        """Pick ports for the 0 ones; True when some port was picked (retry on a clash)."""
        if self._ports_fixed:
            return False
        picked = False
        if self.config.plaintext and self.config.port == 0:
            self._port, picked = pick_free_port(self.host), True
        if self.config.tls is not None and not self.config.tls_port:
            self._tls_port, picked = pick_free_port(self.host), True
        return picked

    def _write_files(self, directory: Path) -> None:
        (directory / "mosquitto.conf").write_text(self.config_text(directory))
        if self.config.users:
            lines = [mosquitto_password_line(u.username, u.password) for u in self.config.users]
            password_file = directory / "passwd"
            password_file.write_text("\n".join(lines) + "\n")
            password_file.chmod(0o600)
            (directory / "acl").write_text(acl_text(self.config.users))

    def config_text(self, directory: Path) -> str:
        """The mosquitto.conf this broker runs with (files live in ``directory``)."""
        anonymous = "true" if self.config.anonymous_allowed else "false"
        parts = ["per_listener_settings false", f"allow_anonymous {anonymous}", _LIMITS]
        # Payload bytes, like the embedded broker's check: larger PUBLISHes are acknowledged
        # and dropped. (max_packet_size would disconnect the client instead.)
        parts.append(f"message_size_limit {self.config.max_message_bytes or 0}")
        if os.geteuid() == 0:
            parts.append(f"user {getpass.getuser()}")  # don't drop to 'mosquitto': files are ours
        if self.config.users:
            parts.append(f"password_file {directory / 'passwd'}")
            parts.append(f"acl_file {directory / 'acl'}")
        if self.config.plaintext:
            parts.append(f"listener {self._port} {self.host}")
        tls = self.config.tls
        if tls is not None:
            parts += [
                f"listener {self._tls_port} {self.host}",
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
            ]
            if self.config.require_client_cert:
                parts.append("require_certificate true")
        return "\n".join(parts) + "\n"

    async def _spawn_and_wait(self, directory: Path) -> str:
        """Start the process; '' when it listens, else the reason from its log."""
        log_path = directory / "mosquitto.log"
        if self._log is not None:
            self._log.close()
        self._log = log_path.open("ab")
        start_offset = self._log.tell()
        self._process = await asyncio.create_subprocess_exec(
            str(self.binary),
            "-c",
            str(directory / "mosquitto.conf"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=die_with_parent(),
        )
        ports = [p for p in (self._port if self.config.plaintext else None, self._tls_port) if p]
        if await self._wait_listening(ports, log_path, start_offset):
            return ""
        await self.stop()
        text = log_path.read_bytes()[start_offset:].decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "it exited without a message"

    async def _wait_listening(self, ports: list[int], log_path: Path, offset: int) -> bool:
        """Mosquitto logs "... running" once every listener is bound; then probe them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT_S
        pending = list(ports)
        running = False
        while pending and loop.time() < deadline:
            if self._process is None or self._process.returncode is not None:
                return False
            if not running:
                running = _log_says_running(log_path, offset)
                if not running:
                    await asyncio.sleep(0.02)
                    continue
            if await _accepts(self.host, pending[0]):
                pending.pop(0)
            else:
                await asyncio.sleep(0.05)
        return not pending and self.running


async def _accepts(host: str, port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _log_says_running(log_path: Path, offset: int) -> bool:
    return b" running" in log_path.read_bytes()[offset:]
