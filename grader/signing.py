"""Ed25519 signatures over the canonical JSON of a result (without `signature`).

The key comes from IIOTLAB_SIGNING_KEY (a PEM private key file); without one, a
development key is generated once under the data dir, with a warning.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from grader.results import canonical_json
from iiotlab.errors import ConfigError, SignatureError
from iiotlab.settings import Settings

logger = logging.getLogger(__name__)

SIGNATURE_PREFIX = "ed25519:"
DEV_KEY_NAME = "grader-dev-signing-key.pem"


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    def sign(self, unsigned: dict[str, Any]) -> str:
        return (
            SIGNATURE_PREFIX
            + base64.b64encode(self.private.sign(canonical_json(unsigned))).decode()
        )

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


def _read_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(
            "signing key file not found", file=path, key="IIOTLAB_SIGNING_KEY"
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"not a PEM private key: {exc}", file=path, key="IIOTLAB_SIGNING_KEY"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            "the signing key must be Ed25519",
            file=path,
            key="IIOTLAB_SIGNING_KEY",
            expected="openssl genpkey -algorithm ed25519",
        )
    return key


def write_new_key(path: Path) -> SigningKey:
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # private from the first byte: never readable by others, even for a moment
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(pem)
    path.chmod(0o600)  # an existing file keeps its mode through O_TRUNC
    return SigningKey(key)


def load_signing_key(settings: Settings) -> SigningKey:
    if settings.signing_key_file is not None:
        return SigningKey(_read_private(settings.signing_key_file))
    path = settings.data_dir / DEV_KEY_NAME
    logger.warning(
        "IIOTLAB_SIGNING_KEY is not set: signing with the development key %s; results signed "
        "with it prove nothing to anyone else. Set IIOTLAB_SIGNING_KEY for graded work.",
        path,
    )
    if path.exists():
        return SigningKey(_read_private(path))
    return _create_dev_key(path)


def _create_dev_key(path: Path) -> SigningKey:
    """The development key, created once however many graders start at the same moment.

    Class mode starts several `iiotlab grade` processes on a fresh data folder: each one
    writing a key of its own would sign the class with different keys. The key is written
    whole to a private file, then linked into place, which fails when another process got
    there first; that one's key is used.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    key = write_new_key(candidate)
    try:
        os.link(candidate, path)
    except FileExistsError:
        key = SigningKey(_read_private(path))
    finally:
        candidate.unlink(missing_ok=True)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM public key, or the public half of a PEM private key."""
    data = path.read_bytes()
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        key = _read_private(path).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the public key must be Ed25519", file=path)
    return key


def verify(data: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless `data` carries a valid signature over the rest."""
    signature = data.get("signature")
    if not isinstance(signature, str) or not signature.startswith(SIGNATURE_PREFIX):
        raise SignatureError("the result has no ed25519 signature")
    unsigned = {k: v for k, v in data.items() if k != "signature"}
    try:
        raw = base64.b64decode(signature[len(SIGNATURE_PREFIX) :], validate=True)
        public_key.verify(raw, canonical_json(unsigned))
    except (InvalidSignature, ValueError):
        raise SignatureError(
            "the signature does not match: the result was changed after grading, or signed "
            "with another key"
        ) from None
