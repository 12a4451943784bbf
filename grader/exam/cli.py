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


def require_sandbox(out: Path) -> None:
    """Exams refuse to run without the bubblewrap sandbox (issue #10)."""
    from grader.pipeline import hidden_paths
    from grader.sandbox import SandboxUnavailableError, choose_sandbox
    from iiotlab.settings import Settings

    try:
        choose_sandbox("bubblewrap", hidden_paths(Settings.from_env(), out, ()))
    except SandboxUnavailableError as exc:
        typer.secho(
            f"error: an exam needs the bubblewrap sandbox: {exc}. Install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1), then start again.",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2) from None


@exam_app.command("serve")
def _serve(
    exam: Path = typer.Argument(..., help="The exam.yaml."),
    roster: Path = typer.Option(..., "--roster", help="CSV with a 'student' column."),
    out: Path = typer.Option(..., "--out", help="New folder: codes, audit log, results."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address every portal, plant, broker and platform binds."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Portal port (0: any)."),
    json_line: bool = typer.Option(False, "--json", help="Print one JSON line when ready."),
    labs: Path | None = typer.Option(None, "--labs", help="Your own labs folder."),
    wait_gateway: float = typer.Option(
        60.0,
        "--wait-gateway",
        min=1.0,
        help="Seconds an attempt waits for the candidate's (re)started gateway.",
    ),
    parallel: int = typer.Option(2, "--parallel", min=1, max=64, help="Gradings at a time."),
) -> None:
    """Run an exam: a live lab per candidate and task, the portal and the proctor dashboard."""
    import asyncio

    from grader.exam.runserver import ServeOptions, serve
    from grader.exam.spec import load_exam
    from grader.exam.state import read_roster

    spec = load_exam(exam, labs)
    students = read_roster(roster)
    if out.exists() and any(out.iterdir()):
        from iiotlab.errors import ConfigError

        raise ConfigError("the out folder is not empty", file=out, expected="a new folder per exam")
    require_sandbox(out)
    options = ServeOptions(
        spec, tuple(students), out, host, port, json_line, wait_gateway, parallel
    )
    asyncio.run(serve(options))


def register(app: typer.Typer) -> None:
    app.add_typer(exam_app, name="exam")
