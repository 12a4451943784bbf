"""amqtt plugins enforcing BrokerConfig's users and tenant ACL inside EmbeddedBroker.

amqtt loads plugins by dotted path and fills their ``Config`` dataclass from the
broker config dict, so these classes must stay importable at this path.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from iiotlab.mqtt.broker import topic_filter_within


class UserPasswordAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Users with passwords, and anonymous clients when allowed.

    Unlike amqtt's AnonymousAuthPlugin it never marks sessions anonymous: amqtt drops the
    offline queue of anonymous sessions, and we want Mosquitto's behaviour (persistent
    sessions for every client id).
    """

    @dataclass
    class Config:
        users: dict[str, str] = field(default_factory=dict)
        allow_anonymous: bool = True

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._settings: UserPasswordAuthPlugin.Config = context.config  # type: ignore[assignment]

    async def authenticate(self, *, session: Session) -> bool | None:
        users = self._settings.users
        if session.username is None:
            return self._settings.allow_anonymous
        if not users:
            # Like Mosquitto without a password file: any name is accepted.
            return self._settings.allow_anonymous
        expected = users.get(session.username)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), (session.password or "").encode())


class TenantTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Tenant users may use ``iiot/{tenant}/#`` only; admins and anonymous clients all topics."""

    @dataclass
    class Config:
        # username -> allowed filter; empty map = no ACL at all
        filters: dict[str, str] = field(default_factory=dict)

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._settings: TenantTopicPlugin.Config = context.config  # type: ignore[assignment]

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        filters = self._settings.filters
        if not filters or session is None or session.username is None:
            return True
        if topic is None:
            return False
        allowed = filters.get(session.username)
        return allowed is not None and topic_filter_within(topic, allowed)
