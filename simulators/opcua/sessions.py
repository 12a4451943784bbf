"""Session hook: what every client really negotiated, and plant writes/calls per session.

asyncua builds an `InternalSession` per client session through
`InternalServer.create_session` (called by `UaProcessor` on CreateSessionRequest, with the
client's peer address as the session name). `PlantInternalServer` overrides that factory to
build a `PlantSession`, which

- checks the secure channel's policy and mode at CreateSession and ActivateSession: asyncua
  always accepts a SecurityPolicy#None channel (clients need it for GetEndpoints) and would
  otherwise let a session run over it even when the None endpoint is not offered;
- records an `OpcuaSessionRecord` when activation succeeds (or is refused) and closes it on
  CloseSession, session timeout, server stop or restart;
- routes writes and method calls on plant nodes to `PlantRequests` with the session's
  client address and user as the source;
- records the data-access services the session used (`OpcuaActivity`): monitored items
  with their sampling interval and DataChangeFilter, Value reads, and browse calls, so a
  grader can tell a subscribing client from a polling one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Protocol

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager

from simulators.opcua.ids import StatusCodes, status
from simulators.opcua.records import (
    MAX_ACTIVITY_RECORDS as MAX_ACTIVITY_RECORDS,
)
from simulators.opcua.records import (
    MonitoredItemRecord as MonitoredItemRecord,
)
from simulators.opcua.records import (
    OpcuaActivity as OpcuaActivity,
)
from simulators.opcua.records import (
    OpcuaSessionRecord as OpcuaSessionRecord,
)
from simulators.opcua.records import (
    now_ms as now_ms,
)
from simulators.opcua.security import OpcuaSecurity

_logger = logging.getLogger(__name__)


class PlantRequests(Protocol):
    """Handles writes and calls aimed at plant nodes; None means "not a plant node"."""

    async def write(self, item: ua.WriteValue, source: str) -> ua.StatusCode | None: ...

    async def call(self, request: ua.CallMethodRequest, source: str) -> ua.CallMethodResult | None:
        """Run a plant method."""


ChannelLookup = Callable[[InternalSession], tuple[str, str] | None]
"""(policy short name, mode) of the secure channel that carries a session, if found."""


def client_address(session: InternalSession) -> str:
    peer: Any = session.name
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def session_source(session: InternalSession) -> str:
    """The write-log source: "opcua:<user>@<host>:<port>", user "anonymous" if none."""
    return f"opcua:{session.user.name or 'anonymous'}@{client_address(session)}"


class SessionLog:
    """Appends to `records` (activated sessions) and `rejected` (refused ones), in place."""

    def __init__(
        self,
        security: OpcuaSecurity,
        records: list[OpcuaSessionRecord],
        rejected: list[OpcuaSessionRecord],
    ) -> None:
        self.security = security
        self.records = records
        self.rejected = rejected
        self.channel_lookup: ChannelLookup = lambda session: None
        self._live: dict[InternalSession, int] = {}  # session -> index in records
        self._activity: dict[InternalSession, OpcuaActivity] = {}

    def check_channel(self, session: InternalSession, user: str | None = None) -> tuple[str, str]:
        found = self.channel_lookup(session)
        policy, mode = found if found is not None else ("Unknown", "Unknown")
        if not self.security.allows(policy, mode):
            _logger.warning("refused session from %s over %s/%s", session.name, policy, mode)
            self.reject(session, policy, mode, user, "BadSecurityPolicyRejected")
            raise ServiceError(StatusCodes.BadSecurityPolicyRejected)
        return policy, mode

    def reject(
        self, session: InternalSession, policy: str, mode: str, user: str | None, error: str
    ) -> None:
        stamp = now_ms()
        client = client_address(session)
        self.rejected.append(OpcuaSessionRecord(stamp, client, policy, mode, user, stamp, error))

    def activated(self, session: InternalSession, policy: str, mode: str) -> None:
        user = session.user.name
        index = self._live.get(session)
        if index is not None:
            current = self.records[index]
            if (current.policy, current.mode, current.user) == (policy, mode, user):
                return
            self.closed(session)
        activity = self._activity.setdefault(session, OpcuaActivity())
        record = OpcuaSessionRecord(
            now_ms(), client_address(session), policy, mode, user, activity=activity
        )
        self._live[session] = len(self.records)
        self.records.append(record)

    def activity(self, session: InternalSession) -> OpcuaActivity:
        """The session's activity record (shared with its OpcuaSessionRecord once activated)."""
        return self._activity.setdefault(session, OpcuaActivity())

    def closed(self, session: InternalSession) -> None:
        self._activity.pop(session, None)
        index = self._live.pop(session, None)
        if index is not None:
            self.records[index] = dataclasses.replace(self.records[index], closed_ms=now_ms())

    async def close_all(self) -> None:
        """Close every live session (server stop or restart); their clients must reconnect."""
        for session in list(self._live):
            await session.close_session(True)


class PlantSession(InternalSession):
    def __init__(self, *args: Any, log: SessionLog, requests: PlantRequests, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._log = log
        self._requests = requests

    async def create_session(
        self, params: ua.CreateSessionParameters, sockname: tuple[str, int] | None = None
    ) -> ua.CreateSessionResult:
        self._log.check_channel(self)
        return await super().create_session(params, sockname)

    def activate_session(
        self, params: ua.ActivateSessionParameters, peer_certificate: bytes | None
    ) -> ua.ActivateSessionResult:
        token = params.UserIdentityToken
        attempted = token.UserName if isinstance(token, ua.UserNameIdentityToken) else None
        policy, mode = self._log.check_channel(self, attempted)
        try:
            result = super().activate_session(params, peer_certificate)
        except ServiceError as error:
            status_name = status(error.code).name
            self._log.reject(self, policy, mode, attempted, status_name)
            raise
        self._log.activated(self, policy, mode)
        return result

    async def close_session(self, delete_subs: bool = True) -> None:
        self._log.closed(self)
        await super().close_session(delete_subs)

    async def read(self, params: ua.ReadParameters) -> list[ua.DataValue]:
        self._log.activity(self).add_reads(params)
        return await super().read(params)

    async def browse(self, params: ua.BrowseParameters) -> list[ua.BrowseResult]:
        self._log.activity(self).browses += 1
        return await super().browse(params)

    async def browse_next(self, parameters: ua.BrowseNextParameters) -> list[ua.BrowseResult]:
        self._log.activity(self).browses += 1
        return await super().browse_next(parameters)

    async def translate_browsepaths_to_nodeids(
        self, params: list[ua.BrowsePath]
    ) -> list[ua.BrowsePathResult]:
        self._log.activity(self).browses += 1
        return await super().translate_browsepaths_to_nodeids(params)

    async def create_monitored_items(
        self, params: ua.CreateMonitoredItemsParameters
    ) -> list[ua.MonitoredItemCreateResult]:
        self._log.activity(self).add_monitored_items(params)
        return await super().create_monitored_items(params)

    async def write(self, params: ua.WriteParameters) -> list[ua.StatusCode]:
        source = session_source(self)
        handled = [await self._requests.write(item, source) for item in params.NodesToWrite]
        others = [
            item for item, done in zip(params.NodesToWrite, handled, strict=True) if done is None
        ]
        rest = iter(await super().write(ua.WriteParameters(NodesToWrite=others)) if others else [])
        return [done if done is not None else next(rest) for done in handled]

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        source = session_source(self)
        handled = [await self._requests.call(request, source) for request in params]
        others = [request for request, done in zip(params, handled, strict=True) if done is None]
        rest = iter(await super().call(others) if others else [])
        return [done if done is not None else next(rest) for done in handled]


class PlantInternalServer(InternalServer):
    """An InternalServer whose client sessions are `PlantSession`s."""

    def __init__(self, user_manager: UserManager, log: SessionLog, requests: PlantRequests):
        super().__init__(user_manager=user_manager)
        self.session_log = log
        self.plant_requests = requests

    def create_session(
        self, name: str, user: User = User(role=UserRole.Anonymous), external: bool = False
    ) -> InternalSession:
        return PlantSession(
            self,
            self.aspace,
            self.subscription_service,
            name,
            user=user,
            external=external,
            log=self.session_log,
            requests=self.plant_requests,
        )
