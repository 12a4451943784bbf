"""Self-signed TLS material for labs and tests: a CA, a server certificate, a client certificate.

The keys are EC P-256 (fast to generate, accepted by OpenSSL, Mosquitto and Python's ssl).
Nothing here is meant for production: the CA key is thrown away once the files are written.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=825)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS set-up; ``client_*`` are set when a client certificate exists."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path | None = None
    client_key_file: Path | None = None


def make_tls_files(
    directory: Path, hostnames: Sequence[str] = ("localhost", "127.0.0.1")
) -> TlsFiles:
    """Write ``ca.crt``, ``server.crt``/``server.key`` and ``client.crt``/``client.key``.

    ``hostnames`` become the server certificate's subject alternative names; entries
    that parse as IP addresses become IP SANs, the others DNS SANs.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iiotlab test CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server = _write_leaf(
        directory, "server", ca_cert, ca_key, hostnames, ExtendedKeyUsageOID.SERVER_AUTH
    )
    client = _write_leaf(directory, "client", ca_cert, ca_key, (), ExtendedKeyUsageOID.CLIENT_AUTH)
    return TlsFiles(
        ca_file=ca_file,
        cert_file=server[0],
        key_file=server[1],
        client_cert_file=client[0],
        client_key_file=client[1],
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _write_leaf(
    directory: Path,
    stem: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hostnames: Sequence[str],
    usage: x509.ObjectIdentifier,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = hostnames[0] if hostnames else f"iiotlab {stem}"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if hostnames:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in hostnames]),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_file = directory / f"{stem}.crt"
    key_file = directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
