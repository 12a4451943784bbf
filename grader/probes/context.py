"""The context a check's probe gets while the lab runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from grader.observation import ObservedMessage, ProbeRecord
from grader.spec import LabSpec
from iiotlab.datasheet import Datasheet

P = TypeVar("P", bound=BaseModel)


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

    def record(self, name: str, *, expected: str, saw: str, ok: bool, **detail: Any) -> None:
        self.records.append(
            ProbeRecord(self.check_id, name, self.now_ms(), expected, saw, ok, detail)
        )
