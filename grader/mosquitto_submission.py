"""A student's own Mosquitto configuration (sec-03): loaded, checked, and run by the grader.

The submission holds `mosquitto.conf`, the ACL file and the password file it names (plain
file names in the submission folder), and `credentials.yaml`: the account the student's
gateway logs in with (`username`, `password`). `${IIOTLAB_TENANT}` in the ACL, the password
file and credentials.yaml stands for the student's tenant, as a deployment tool (envsubst)
would fill it in.

The grader never trusts the configuration's paths or ports: every `listener` gets a free
loopback port of the grader's, `cafile`/`certfile`/`keyfile` are the grader's CA and server
certificate, logging and persistence are the grader's. Directives that load code or files
(`plugin`, `include_dir`, ...) are refused with a submission error, and so is anything the
grader does not know. The grader adds two accounts of its own to copies of the files: its
observer (every topic) and an intruder (a second tenant, `grader-intruder`, who gets
whatever the student's ACL patterns give every user).
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grader.submission import SubmissionError
from iiotlab.certs import TlsFiles
from iiotlab.mqtt.broker import BrokerConfig, pick_free_port
from iiotlab.mqtt.mosquitto import MosquittoBroker, mosquitto_password_line

CONF_FILE = "mosquitto.conf"
CREDENTIALS_FILE = "credentials.yaml"
TENANT_PLACEHOLDER = "${IIOTLAB_TENANT}"
INTRUDER = "grader-intruder"

# what the grader runs every student's broker with (its own log, no persistence)
_GRADER_HEADER = """\
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
persistence false
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 1000
"""

# global directives passed through as written
_GLOBAL_OK = frozenset(
    {
        "per_listener_settings",
        "allow_anonymous",
        "allow_zero_length_clientid",
        "auto_id_prefix",
        "check_retain_source",
        "max_keepalive",
        "max_packet_size",
        "message_size_limit",
        "persistent_client_expiration",
        "retain_available",
        "sys_interval",
        "upgrade_outgoing_qos",
        "max_inflight_bytes",
        "max_queued_bytes",
        "memory_limit",
        "allow_duplicate_messages",
    }
)
# listener directives passed through as written (they follow a `listener` line)
_LISTENER_OK = frozenset(
    {
        "tls_version",
        "ciphers",
        "ciphers_tls1.3",
        "require_certificate",
        "use_identity_as_username",
        "use_subject_as_username",
        "max_connections",
        "max_topic_alias",
        "socket_domain",
    }
)
_BOOLEAN = frozenset(
    {
        "allow_anonymous",
        "allow_zero_length_clientid",
        "check_retain_source",
        "retain_available",
        "upgrade_outgoing_qos",
        "allow_duplicate_messages",
        "require_certificate",
        "use_identity_as_username",
        "use_subject_as_username",
    }
)
_INTEGER = frozenset(
    {
        "max_keepalive",
        "max_packet_size",
        "message_size_limit",
        "sys_interval",
        "max_inflight_bytes",
        "max_queued_bytes",
        "memory_limit",
        "max_connections",
        "max_topic_alias",
    }
)
_TLS_VERSIONS = ("tlsv1.1", "tlsv1.2", "tlsv1.3")
_TLS_FILES = frozenset({"cafile", "capath", "certfile", "keyfile"})  # the grader's own
# the grader's log, persistence and process settings replace these (dropped, noted)
_GRADER_OWNS = frozenset(
    {
        "log_dest",
        "log_type",
        "log_facility",
        "log_timestamp",
        "log_timestamp_format",
        "connection_messages",
        "websockets_log_level",
        "persistence",
        "persistence_file",
        "persistence_location",
        "autosave_interval",
        "autosave_on_changes",
        "pid_file",
        "user",
        "set_tcp_nodelay",
        "max_queued_messages",
        "max_inflight_messages",
    }
)
# code or files from outside the submission, or a second way to open a port: refused
_REFUSED = {
    "plugin": "loads a shared library into the broker",
    "auth_plugin": "loads a shared library into the broker",
    "include_dir": "reads configuration from outside the submission",
    "port": "opens the default listener on a port of its own: use a `listener` line",
    "bind_address": "binds the default listener: use a `listener` line",
    "bind_interface": "binds to a network interface of the machine",
    "http_dir": "serves files from the machine",
    "psk_file": "reads a file from outside the submission",
    "crlfile": "reads a file from outside the submission",
    "dhparamfile": "reads a file from outside the submission",
    "connection": "opens a bridge to another broker",
    "address": "opens a bridge to another broker",
}
_REFUSED_PREFIXES = ("plugin_opt_", "auth_opt_", "bridge_")


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    line: int

    @property
    def value(self) -> str:
        return " ".join(self.args)


@dataclass
class Listener:
    """One `listener` block of the student's configuration."""

    line: int
    directives: list[Directive] = field(default_factory=list)

    @property
    def tls(self) -> bool:
        return any(d.name in ("certfile", "keyfile") for d in self.directives)

    @property
    def tls_version(self) -> str | None:
        found = [d.value for d in self.directives if d.name == "tls_version"]
        return found[-1] if found else None


@dataclass(frozen=True)
class MosquittoSubmission:
    """What the grader runs: the student's directives, files and gateway account."""

    folder: Path
    global_directives: tuple[Directive, ...]
    plaintext: Listener | None
    tls: Listener | None
    acl: str | None  # None: the configuration names no acl_file (every topic open)
    passwords: str | None  # None: no password_file
    username: str
    password: str
    dropped: tuple[str, ...]  # directives the grader's own settings replaced

    def global_value(self, name: str) -> str | None:
        found = [d.value for d in self.global_directives if d.name == name]
        tls = self.tls.directives if self.tls else []
        plain = self.plaintext.directives if self.plaintext else []
        found += [d.value for d in (*tls, *plain) if d.name == name]
        return found[-1] if found else None


def _error(
    message: str, path: Path, line: int | None = None, expected: str = ""
) -> SubmissionError:
    return SubmissionError(message, file=path, line=line, expected=expected or None)


def _check_value(directive: Directive, path: Path) -> None:
    """The values mosquitto would refuse, refused here with the line and what to write."""
    name, args = directive.name, directive.args
    expected = ""
    if name in _BOOLEAN and args not in (("true",), ("false",)):
        expected = f"{name} true or {name} false"
    elif name in _INTEGER and not (len(args) == 1 and args[0].lstrip("-").isdigit()):
        expected = f"{name} <a whole number>"
    elif name == "tls_version" and (len(args) != 1 or args[0] not in _TLS_VERSIONS):
        expected = f"tls_version {' or '.join(_TLS_VERSIONS)}"
    if expected:
        raise _error(f"`{name} {directive.value}` is not valid", path, directive.line, expected)


def parse_conf(text: str, path: Path) -> tuple[list[Directive], list[Listener], list[str]]:
    """Global directives, listener blocks, and the directives the grader drops."""
    globals_: list[Directive] = []
    listeners: list[Listener] = []
    dropped: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, *args = stripped.split()
        directive = Directive(name, tuple(args), number)
        if name in _REFUSED or name.startswith(_REFUSED_PREFIXES):
            reason = _REFUSED.get(name, "is not allowed in a graded broker")
            raise _error(
                f"`{name}` {reason}: the grader refuses it",
                path,
                number,
                "remove the line (see the lab README for what the grader runs)",
            )
        if name == "include_dir" or name.startswith("include"):
            raise _error(f"`{name}` is not allowed", path, number, "remove the line")
        if name == "listener":
            if not args or not args[0].isdigit():
                raise _error("`listener` needs a port number", path, number, "listener 8883")
            listeners.append(Listener(number))
            continue
        if name == "protocol":
            if args != ["mqtt"]:
                raise _error(
                    f"protocol {' '.join(args)} is not graded", path, number, "protocol mqtt"
                )
            continue
        if name in _GRADER_OWNS:
            dropped.append(f"line {number}: {stripped}")
            continue
        _check_value(directive, path)
        if name in _TLS_FILES or name in _LISTENER_OK:
            if not listeners:
                raise _error(
                    f"`{name}` before any `listener` line",
                    path,
                    number,
                    "put TLS settings under the `listener` they belong to",
                )
            listeners[-1].directives.append(directive)
            continue
        if name == "per_listener_settings" and args != ["false"]:
            raise _error(
                "the grader runs per_listener_settings false (one security policy)",
                path,
                number,
                "per_listener_settings false, or leave the line out",
            )
        if name in ("password_file", "acl_file") or name in _GLOBAL_OK:
            if len(args) != 1:
                raise _error(f"`{name}` takes one value", path, number)
            globals_.append(directive)
            continue
        raise _error(
            f"unknown or unsupported directive `{name}`",
            path,
            number,
            "the directives of the lab README (listener, allow_anonymous, password_file, "
            "acl_file, cafile, certfile, keyfile, tls_version, ...)",
        )
    return globals_, listeners, dropped


def _local_file(folder: Path, conf: Path, directive: Directive) -> Path:
    """password_file/acl_file: a plain file name in the submission folder, never a path."""
    name = directive.value
    if "/" in name or "\\" in name or name in (".", "..") or not name:
        raise _error(
            f"`{directive.name} {name}` points outside the submission",
            conf,
            directive.line,
            f"a plain file name next to mosquitto.conf, e.g. `{directive.name} "
            f"{'acl' if directive.name == 'acl_file' else 'passwd'}`",
        )
    path = folder / name
    if not path.is_file() or path.is_symlink():
        raise _error(f"{name} (named by {directive.name}) is not in the submission", conf)
    return path


_HASHED = re.compile(r"^[^:\s]+:\$(6|7)\$\S+$")


def check_passwords(text: str, path: Path) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if ":" not in line:
            raise _error("not a password-file line (user:hash)", path, number)
        if not _HASHED.match(line.strip()):
            raise _error(
                "this password is not hashed",
                path,
                number,
                "hash the file with `mosquitto_passwd -U passwd` (or create it with "
                "`mosquitto_passwd -c passwd USER`)",
            )


def _text(path: Path, missing: str, expected: str) -> str:
    """A submitted file's text; a SubmissionError for anything but a readable UTF-8 file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(missing, path, expected=expected) from None
    except IsADirectoryError:
        raise _error(f"{path.name} is a folder", path, expected=expected) from None
    except UnicodeDecodeError as exc:
        raise _error(
            f"{path.name} is not UTF-8 text (byte {exc.start})", path, expected=expected
        ) from None
    except OSError as exc:
        raise _error(
            f"{path.name} cannot be read: {exc.strerror}", path, expected=expected
        ) from None


def _credentials(folder: Path, tenant: str) -> tuple[str, str]:
    path = folder / CREDENTIALS_FILE
    text = _text(
        path,
        "the gateway's account is missing",
        "credentials.yaml with `username:` and `password:` of your gateway's user",
    )
    try:
        data = yaml.safe_load(text.replace(TENANT_PLACEHOLDER, tenant))
    except yaml.YAMLError as exc:
        raise _error(f"not valid YAML: {exc}", path) from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data.get(k) for k in ("username", "password")
    ):
        raise _error(
            "credentials.yaml needs a username and a password (strings)",
            path,
            expected="username: gw-${IIOTLAB_TENANT}\npassword: <the password you hashed>",
        )
    return str(data["username"]), str(data["password"])


def load_mosquitto_submission(folder: Path, tenant: str) -> MosquittoSubmission:
    """The student's Mosquitto files, checked; a SubmissionError says what to change."""
    conf = folder / CONF_FILE
    for name in (CONF_FILE, CREDENTIALS_FILE):
        if (folder / name).is_symlink():
            raise _error(f"{name} is a symbolic link", folder / name, expected="a regular file")
    text = _text(conf, "mosquitto.conf not found", "mosquitto.conf in the submission")
    globals_, listeners, dropped = parse_conf(text, conf)
    plain = [listener for listener in listeners if not listener.tls]
    tls = [listener for listener in listeners if listener.tls]
    if not listeners:
        raise _error(
            "no `listener` line",
            conf,
            expected="a TLS listener, e.g. `listener 8883` with cafile/certfile/keyfile",
        )
    if len(plain) > 1 or len(tls) > 1:
        raise _error(
            f"{len(plain)} plaintext and {len(tls)} TLS listeners",
            conf,
            expected="at most one plaintext and one TLS listener",
        )
    files: dict[str, str | None] = {"password_file": None, "acl_file": None}
    for directive in globals_:
        if directive.name in files:
            path = _local_file(folder, conf, directive)
            what = "an ACL file" if directive.name == "acl_file" else "a mosquitto_passwd file"
            files[directive.name] = _text(path, f"{path.name} is missing", what).replace(
                TENANT_PLACEHOLDER, tenant
            )
            if directive.name == "password_file":
                check_passwords(files[directive.name] or "", path)
    username, password = _credentials(folder, tenant)
    return MosquittoSubmission(
        folder=folder,
        global_directives=tuple(d for d in globals_ if d.name not in files),
        plaintext=plain[0] if plain else None,
        tls=tls[0] if tls else None,
        acl=files["acl_file"],
        passwords=files["password_file"],
        username=username,
        password=password,
        dropped=tuple(dropped),
    )


@dataclass(frozen=True)
class GraderAccount:
    username: str
    password: str


class SubmittedMosquitto(MosquittoBroker):
    """The Debian mosquitto binary running the student's configuration, rewritten."""

    def __init__(
        self,
        submission: MosquittoSubmission,
        tls_files: TlsFiles | None,
        observer: GraderAccount,
    ) -> None:
        super().__init__(
            BrokerConfig(
                port=0,
                tls=tls_files if submission.tls is not None else None,
                plaintext=submission.plaintext is not None,
            )
        )
        self.submission = submission
        self.tls_files = tls_files
        self.observer = observer
        self.intruder = GraderAccount(INTRUDER, secrets.token_urlsafe(12))
        self.closed_port = pick_free_port(self.host)  # where a plaintext listener is not

    @property
    def effective_conf(self) -> Path | None:
        """The configuration the broker runs with (after start)."""
        return Path(self._directory.name) / "mosquitto.conf" if self._directory else None

    def _write_files(self, directory: Path) -> None:
        sub = self.submission
        (directory / "mosquitto.conf").write_text(self.config_text(directory))
        graders = [
            mosquitto_password_line(a.username, a.password) for a in (self.observer, self.intruder)
        ]
        passwd = directory / "passwd"
        passwd.write_text((sub.passwords or "").rstrip("\n") + "\n" + "\n".join(graders) + "\n")
        passwd.chmod(0o600)
        if sub.acl is not None:
            observer = (
                f"\n\n# added by the grader\nuser {self.observer.username}\ntopic readwrite #\n"
            )
            (directory / "acl").write_text(sub.acl.rstrip("\n") + observer)

    def config_text(self, directory: Path) -> str:
        sub = self.submission
        parts = ["# the student's mosquitto.conf as the grader runs it", _GRADER_HEADER]
        if os.geteuid() == 0:
            parts.append(f"user {getpass.getuser()}")
        parts.append(f"password_file {directory / 'passwd'}")
        if sub.acl is not None:
            parts.append(f"acl_file {directory / 'acl'}")
        parts += [f"{d.name} {d.value}" for d in sub.global_directives]
        if sub.plaintext is not None:
            parts.append(f"\nlistener {self._port} {self.host}")
            parts += [
                f"{d.name} {d.value}" for d in sub.plaintext.directives if d.name not in _TLS_FILES
            ]
        if sub.tls is not None and self.tls_files is not None:
            files = self.tls_files
            parts += [
                f"\nlistener {self._tls_port} {self.host}",
                f"cafile {files.ca_file}",
                f"certfile {files.cert_file}",
                f"keyfile {files.key_file}",
            ]
            parts += [f"{d.name} {d.value}" for d in sub.tls.directives if d.name not in _TLS_FILES]
        return "\n".join(parts) + "\n"
