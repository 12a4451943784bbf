"""`iiotlab exam serve` and `iiotlab exam verify-log`."""

from __future__ import annotations

from pathlib import Path

import typer

exam_app = typer.Typer(help="Run a practical exam (docs/exam.md).", no_args_is_help=True)

PUBLIC_KEY_HELP = "PEM public key (default: this machine's signing key)."


def _public_key(public_key: Path | None) -> object:
    from grader.signing import load_public_key, load_signing_key
    from iiotlab.settings import Settings

    if public_key is not None:
        return load_public_key(public_key)
    return load_signing_key(Settings.from_env()).private.public_key()


@exam_app.command("verify-log")
def _verify_log(
    log: Path = typer.Argument(..., help="The exam's audit.jsonl."),
    public_key: Path | None = typer.Option(None, "--public-key", help=PUBLIC_KEY_HELP),
    open_log: bool = typer.Option(
        False, "--open", help="The exam is still running: do not require the signed closing entry."
    ),
) -> None:
    """Check the audit log's hash chain and signed closing entry; exit 1 on any edit,
    deletion or reordering."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from grader.exam.audit import verify_log
    from iiotlab.errors import ConfigError

    if not log.is_file():
        raise ConfigError("audit log not found", file=log, expected="the exam's audit.jsonl")
    key = _public_key(public_key)
    assert isinstance(key, Ed25519PublicKey)
    report = verify_log(log, key, require_closed=not open_log)
    for problem in report.problems:
        typer.secho(f"INVALID: {log}: {problem}", err=True, fg=typer.colors.RED)
    if not report.ok:
        raise typer.Exit(1)
    state = "closed and signed" if report.closed else "open"
    typer.echo(f"valid: {report.entries} entries, {state}, head {report.head}")


def register(app: typer.Typer) -> None:
    app.add_typer(exam_app, name="exam")
