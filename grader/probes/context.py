"""The context a check's probe gets while the lab runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from grader.observation import ObservedMessage, ProbeRecord, status_state
from grader.spec import LabSpec
from iiotlab.datasheet import Datasheet

P = TypeVar("P", bound=BaseModel)
RETRY_S = 0.5  # pause between two fresh subscriptions of `retained`
POLL_S = 0.1  # how often `online` looks at what the observer received


@dataclass(frozen=True)
class BrokerAccess:
    """How to reach the lab's broker and who may use it."""

    host: str
    plaintext_port: int | None  # None: no plaintext listener
    tls_port: int | None
    ca_file: str | None
    gateway_username: str | None
    gateway_password: str | None
    tls_required: bool
    closed_plaintext_port: int | None = None  # port a plaintext listener would use when closed


class ProbeEnvironment(Protocol):
    """The grader's side of a running lab, as probes use it."""

    @property
    def broker_info(self) -> BrokerAccess: ...

    @property
    def messages(self) -> Sequence[ObservedMessage]:
        """What the grader's observer received so far."""

    platform_url: str | None
    platform_token: str | None  # sent as a bearer token when the platform has auth on
    student_proxy_port: int | None  # modbus_proxy labs: where the submission listens

    async def first_retained(self, topic: str, wait_s: float) -> ObservedMessage | None: ...

    async def publish_admin(self, topic: str, payload: bytes) -> None: ...

    async def try_connect(
        self, *, username: str | None, password: str | None, port: int, tls: bool
    ) -> str | None:
        """None when the broker accepted the connection, else why it was refused."""

    async def cross_tenant(
        self, username: str, password: str, other_tenant: str
    ) -> Mapping[str, Any]:
        """Try reading and writing another tenant's topics as this user."""


@dataclass
class ProbeContext(Generic[P]):
    check_id: str
    params: P
    lab: LabSpec
    datasheet: Datasheet
    tenant: str
    device: str
    env: ProbeEnvironment
    started_monotonic: float
    records: list[ProbeRecord] = field(default_factory=list)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    async def sleep_until(self, at_s: float) -> None:
        """Sleep until `at_s` seconds after the gateway started."""
        delay = self.started_monotonic + at_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def retained(
        self,
        topic: str,
        *,
        until_s: float,
        wait_s: float,
        accept: Callable[[ObservedMessage], bool] = lambda _: True,
    ) -> tuple[ObservedMessage | None, int]:
        """Subscribe afresh until a retained message `accept`s, or `until_s` s after start.

        A gateway may start late on a busy machine, or a live publish may reach a fresh
        subscription before the broker holds a retained copy: one subscription at a fixed
        time would judge how fast the gateway started, not whether it retains. Returns the
        last message seen (None: nothing ever arrived) and how many subscriptions it took.
        """
        last: ObservedMessage | None = None
        attempts = 0
        while True:
            attempts += 1
            saw = await self.env.first_retained(topic, wait_s=wait_s)
            if saw is not None:
                last = saw
                if saw.retain and accept(saw):
                    return saw, attempts
            if time.monotonic() >= self.started_monotonic + until_s:
                return last, attempts
            await asyncio.sleep(RETRY_S)

    async def online(self, *, until_s: float) -> int | None:
        """When the gateway's first status 'online' reached the grader (epoch ms).

        Waits for it until `until_s` s after start; None when it has not come by then.
        A probe that needs a listening gateway (a command, say) starts from this, not from
        a fixed time, which a gateway starting slowly on a busy machine could miss.
        """
        topic = f"iiot/{self.tenant}/{self.device}/status"
        seen = 0
        while True:
            messages = self.env.messages
            for message in messages[seen:]:
                if message.topic == topic and status_state(message) == "online":
                    return message.received_ms
            seen = len(messages)
            if time.monotonic() >= self.started_monotonic + until_s:
                return None
            await asyncio.sleep(POLL_S)

    def record(self, name: str, *, expected: str, saw: str, ok: bool, **detail: Any) -> None:
        self.records.append(
            ProbeRecord(self.check_id, name, self.now_ms(), expected, saw, ok, detail)
        )
