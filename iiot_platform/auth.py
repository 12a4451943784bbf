"""API tokens and roles. A student sees one tenant; instructors and admins see all.

With auth off every request acts as an admin (the open `iiotlab up` classroom default).
Tokens come from the settings (a tokens file) or are created by an admin through the API;
the platform keeps only their SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from iiot_platform.settings import ApiToken, Role

ROLE_RANK: dict[Role, int] = {"student": 0, "instructor": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    """Who is calling: role, tenant (students only) and a name for audit fields."""

    role: Role
    tenant: str | None
    name: str

    def can_see(self, tenant: str) -> bool:
        return self.role != "student" or self.tenant == tenant

    @property
    def scope(self) -> str | None:
        """The tenant a listing is limited to (None: every tenant)."""
        return self.tenant if self.role == "student" else None

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


OPEN_PRINCIPAL = Principal(role="admin", tenant=None, name="anonymous")


class TokenSpec(BaseModel):
    """Body of POST /api/tokens."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    tenant: str | None = Field(default=None, description="required for a student token")
    name: str = ""


class TokenInfo(BaseModel):
    name: str
    role: Role
    tenant: str | None
    created_ms: int
    fingerprint: str
    token: str | None = Field(default=None, description="shown once, at creation")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """Known tokens by digest."""

    def __init__(self, tokens: tuple[ApiToken, ...] = ()) -> None:
        self._by_digest: dict[str, TokenInfo] = {}
        for token in tokens:
            self._add(token.token, token.role, token.tenant, token.name or token.role)

    def _add(self, token: str, role: Role, tenant: str | None, name: str) -> TokenInfo:
        digest = _digest(token)
        info = TokenInfo(
            name=name,
            role=role,
            tenant=tenant,
            created_ms=int(time.time() * 1000),
            fingerprint=digest[:12],
        )
        self._by_digest[digest] = info
        return info

    def load(self, stored: list[tuple[str, TokenInfo]]) -> None:
        self._by_digest.update(dict(stored))

    def create(self, spec: TokenSpec) -> tuple[str, TokenInfo]:
        """A new random token; returns (digest, info with the token shown once)."""
        token = "iiot_" + secrets.token_urlsafe(24)
        info = self._add(token, spec.role, spec.tenant, spec.name or spec.role)
        return _digest(token), info.model_copy(update={"token": token})

    def principal(self, token: str) -> Principal | None:
        info = self._by_digest.get(_digest(token))
        if info is None:
            return None
        return Principal(role=info.role, tenant=info.tenant, name=info.name)

    def select(self) -> list[TokenInfo]:
        return sorted(self._by_digest.values(), key=lambda i: i.created_ms)
