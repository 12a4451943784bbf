"""Identifier resolution (标识解析): enterprise prefixes and `prefix/suffix` identifiers.

Syntax (Handle-like, RFC 3650/3651, narrowed for the lab; docs/platform.md repeats it):
- identifier = prefix "/" suffix, split at the FIRST "/";
- prefix = 1-8 dot-separated decimal segments, each 1-10 digits without leading zeros
  (e.g. `88.100.1`); compared exactly;
- suffix = 1-128 printable Unicode characters; no whitespace, no control characters and
  none of `? # % " < > \\`; "/" is allowed after the first one; case-sensitive.
- the whole identifier is at most 255 UTF-8 bytes.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from iiotlab.errors import IiotlabError

_SEGMENT = re.compile(r"^(0|[1-9][0-9]{0,9})$")
_FORBIDDEN = set('?#%"<>\\')
MAX_SEGMENTS = 8
MAX_SUFFIX = 128
MAX_BYTES = 255
EXAMPLE = "88.100.1/PUMP-0001"


class IdentifierSyntaxError(IiotlabError):
    """A prefix or identifier that breaks the syntax rules; the message says which rule."""


class PrefixTakenError(IiotlabError):
    """The prefix is registered already (HTTP 409)."""


class UnknownPrefixError(IiotlabError):
    """An identifier under a prefix nobody registered."""


class Prefix(BaseModel):
    prefix: str
    tenant: str
    description: str = ""
    created_ms: int
    parent: str | None = Field(
        default=None, description="the registered prefix it was allocated under, if any"
    )


class PrefixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str
    tenant: str | None = None
    description: str = ""


class IdentifierRecord(BaseModel):
    identifier: str
    prefix: str
    suffix: str
    tenant: str
    device: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_ms: int


class IdentifierSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: str = Field(description=f"prefix/suffix, e.g. {EXAMPLE}")
    device: str | None = Field(default=None, description="device of the prefix's tenant")
    metadata: dict[str, Any] = Field(default_factory=dict)


def check_prefix(prefix: str) -> str:
    if not prefix:
        raise IdentifierSyntaxError("prefix is empty; expected digits and dots such as 88.100.1")
    segments = prefix.split(".")
    if len(segments) > MAX_SEGMENTS:
        raise IdentifierSyntaxError(
            f"prefix {prefix!r} has {len(segments)} segments; at most {MAX_SEGMENTS} allowed"
        )
    for segment in segments:
        if not _SEGMENT.match(segment):
            raise IdentifierSyntaxError(
                f"prefix {prefix!r}: segment {segment!r} is not a decimal number of 1-10 digits"
                " without leading zeros (expected a form such as 88.100.1)"
            )
    return prefix


def check_suffix(suffix: str, identifier: str) -> str:
    if not suffix:
        raise IdentifierSyntaxError(
            f"identifier {identifier!r} has an empty suffix; expected e.g. {EXAMPLE}"
        )
    if len(suffix) > MAX_SUFFIX:
        raise IdentifierSyntaxError(
            f"suffix of {identifier!r} has {len(suffix)} characters; at most {MAX_SUFFIX}"
        )
    for position, char in enumerate(suffix):
        if char.isspace() or not char.isprintable() or char in _FORBIDDEN:
            raise IdentifierSyntaxError(
                f"suffix of {identifier!r} contains {char!r} at position {position}; whitespace,"
                ' control characters and ? # % " < > \\ are not allowed'
            )
    return suffix


def parse_identifier(identifier: str) -> tuple[str, str]:
    """Split and check `prefix/suffix`; IdentifierSyntaxError says which rule broke."""
    if len(identifier.encode("utf-8")) > MAX_BYTES:
        raise IdentifierSyntaxError(f"identifier is over {MAX_BYTES} UTF-8 bytes")
    if "/" not in identifier:
        raise IdentifierSyntaxError(
            f"identifier {identifier!r} has no '/'; expected <prefix>/<suffix> such as {EXAMPLE}"
        )
    prefix, suffix = identifier.split("/", 1)
    return check_prefix(prefix), check_suffix(suffix, identifier)


class IdentifierRegistry:
    """Prefixes (each owned by a tenant) and the identifiers registered under them."""

    def __init__(self) -> None:
        self.prefixes: dict[str, Prefix] = {}
        self.identifiers: dict[str, IdentifierRecord] = {}

    def load(self, prefixes: list[Prefix], identifiers: list[IdentifierRecord]) -> None:
        self.prefixes.update({p.prefix: p for p in prefixes})
        self.identifiers.update({i.identifier: i for i in identifiers})

    def parent_of(self, prefix: str) -> Prefix | None:
        """The longest registered prefix that `prefix` extends by whole segments.

        Two-level allocation: a secondary node owns e.g. `88.100.7` and allocates the
        enterprise prefixes `88.100.7.1`, `88.100.7.2`, ... under it.
        """
        segments = check_prefix(prefix).split(".")
        for end in range(len(segments) - 1, 0, -1):
            found = self.prefixes.get(".".join(segments[:end]))
            if found is not None:
                return found
        return None

    def add_prefix(self, prefix: str, tenant: str, description: str = "") -> Prefix:
        check_prefix(prefix)
        if prefix in self.prefixes:
            owner = self.prefixes[prefix].tenant
            raise PrefixTakenError(f"prefix {prefix!r} is already registered (tenant {owner!r})")
        parent = self.parent_of(prefix)
        record = Prefix(
            prefix=prefix,
            tenant=tenant,
            description=description,
            created_ms=int(time.time() * 1000),
            parent=parent.prefix if parent is not None else None,
        )
        self.prefixes[prefix] = record
        return record

    def prefix_of(self, identifier: str) -> Prefix:
        prefix, _ = parse_identifier(identifier)
        record = self.prefixes.get(prefix)
        if record is None:
            raise UnknownPrefixError(
                f"prefix {prefix!r} of {identifier!r} is not registered; register it first"
                " (POST /api/prefixes)"
            )
        return record

    def register(self, spec: IdentifierSpec) -> IdentifierRecord:
        owner = self.prefix_of(spec.identifier)
        prefix, suffix = parse_identifier(spec.identifier)
        record = IdentifierRecord(
            identifier=spec.identifier,
            prefix=prefix,
            suffix=suffix,
            tenant=owner.tenant,
            device=spec.device,
            metadata=spec.metadata,
            created_ms=int(time.time() * 1000),
        )
        self.identifiers[spec.identifier] = record
        return record

    def resolve(self, identifier: str) -> IdentifierRecord | None:
        self.prefix_of(identifier)
        return self.identifiers.get(identifier)
