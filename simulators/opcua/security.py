"""Security of the simulators' OPC UA server: policies, the certificate, the user check."""

from __future__ import annotations

import asyncio
import datetime
import hmac
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from iiotlab.errors import ConfigError

APPLICATION_URI = "urn:iiotlab:simulators:opcua"
CERTIFICATE_FILE = "opcua_server_cert.der"
PRIVATE_KEY_FILE = "opcua_server_key.pem"
CERTIFICATE_DAYS = 3650

_POLICY_TYPES: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256:Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256:SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128Sha256RsaOaep:Sign": ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    "Aes128Sha256RsaOaep:SignAndEncrypt": ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    "Aes256Sha256RsaPss:Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256Sha256RsaPss:SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}
SUPPORTED_POLICIES: tuple[str, ...] = tuple(_POLICY_TYPES)


@dataclass(frozen=True)
class OpcuaSecurity:
    """Which endpoints the server offers and who may open a session.

    `policies` names endpoints as "None" or "<Policy>:<Mode>", e.g.
    "Basic256Sha256:SignAndEncrypt" (the datasheet's `opcua.security` uses the same form).
    """

    policies: tuple[str, ...] = ("None", "Basic256Sha256:Sign", "Basic256Sha256:SignAndEncrypt")
    users: Mapping[str, str] = field(default_factory=dict)  # username -> password
    allow_anonymous: bool = True

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigError(
                "OPC UA security offers no endpoint",
                key="opcua.security.policies",
                value=list(self.policies),
                expected=f"one or more of {', '.join(SUPPORTED_POLICIES)}",
            )
        for policy in self.policies:
            if policy not in _POLICY_TYPES:
                raise ConfigError(
                    "unknown OPC UA security policy",
                    key="opcua.security.policies",
                    value=policy,
                    expected=f"one of {', '.join(SUPPORTED_POLICIES)}",
                )
        if not self.users and not self.allow_anonymous:
            raise ConfigError(
                "OPC UA security lets nobody in: anonymous is off and there are no users",
                key="opcua.security.users",
                value={},
                expected="at least one username/password, or allow_anonymous=True",
            )

    @property
    def needs_certificate(self) -> bool:
        return any(policy != "None" for policy in self.policies)

    def allows(self, policy: str, mode: str) -> bool:
        """Whether a channel of this policy short name and mode may carry a session."""
        name = "None" if policy == "None" else f"{policy}:{mode}"
        return name in self.policies


def policy_types(security: OpcuaSecurity) -> list[ua.SecurityPolicyType]:
    return [_POLICY_TYPES[name] for name in security.policies]


def identity_tokens(security: OpcuaSecurity) -> list[type]:
    tokens: list[type] = []
    if security.allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if security.users:
        tokens.append(ua.UserNameIdentityToken)
    return tokens


def policy_short_name(uri: str) -> str:
    """ "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256" -> "Basic256Sha256"."""
    return uri.rsplit("#", 1)[-1] if "#" in uri else uri


def mode_name(mode: ua.MessageSecurityMode) -> str:
    return {
        ua.MessageSecurityMode.None_: "None",
        ua.MessageSecurityMode.Sign: "Sign",
        ua.MessageSecurityMode.SignAndEncrypt: "SignAndEncrypt",
    }.get(mode, "Invalid")


class PlantUserManager(UserManager):
    """Checks username/password against OpcuaSecurity.users; anonymous only if allowed."""

    def __init__(self, security: OpcuaSecurity) -> None:
        self._users = dict(security.users)
        self._allow_anonymous = security.allow_anonymous

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self._allow_anonymous else None
        expected = self._users.get(username)
        if expected is None:
            return None
        given = (password or "").encode("utf-8")
        if not hmac.compare_digest(expected.encode("utf-8"), given):
            return None
        return User(role=UserRole.User, name=username)


@dataclass(frozen=True)
class CertificateFiles:
    certificate: Path  # DER
    private_key: Path  # PEM, unencrypted


async def ensure_certificate(cert_dir: Path) -> CertificateFiles:
    """Reuse the server certificate in cert_dir, or generate a self-signed one there."""
    return await asyncio.to_thread(_ensure_certificate, cert_dir)


def _ensure_certificate(cert_dir: Path) -> CertificateFiles:
    cert_dir.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(cert_dir / CERTIFICATE_FILE, cert_dir / PRIVATE_KEY_FILE)
    if _usable(files):
        return files
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(APPLICATION_URI),
        x509.DNSName(socket.gethostname()),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    certificate = cert_gen.generate_self_signed_app_certificate(
        key,
        APPLICATION_URI,
        {"organizationName": "iiotlab"},
        names,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=CERTIFICATE_DAYS,
    )
    files.private_key.write_bytes(cert_gen.dump_private_key_as_pem(key))
    files.private_key.chmod(0o600)
    files.certificate.write_bytes(certificate.public_bytes(Encoding.DER))
    return files


def _usable(files: CertificateFiles) -> bool:
    """Present, readable, not expiring within a day, and naming our application URI."""
    if not (files.certificate.is_file() and files.private_key.is_file()):
        return False
    try:
        certificate = x509.load_der_x509_certificate(files.certificate.read_bytes())
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return False
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return certificate.not_valid_after_utc > soon and APPLICATION_URI in uris
