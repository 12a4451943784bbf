"""Grader commands: `iiotlab grade`, `iiotlab verify`, `iiotlab class grade`, `iiotlab lab`,
`iiotlab worker`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from enum import StrEnum
from pathlib import Path

import typer

from grader.cluster.cli import worker as cluster_worker

class_app = typer.Typer(help="Grade a whole class.", no_args_is_help=True)
lab_app = typer.Typer(help="Inspect labs.", no_args_is_help=True)


LAB_HELP = "Lab id (see `iiotlab lab list`), lab folder or its lab.yaml."
LABS_HELP = "Your own labs folder: lab ids are looked up there first."


class ReadmeLanguage(StrEnum):
    en = "en"
    zh = "zh"


def _grade(
    lab: str = typer.Argument(..., help=LAB_HELP),
    student: str = typer.Option(..., "--student", help="Student id (tenant, variant)."),
    gateway_cmd: str | None = typer.Option(
        None, "--gateway-cmd", help="Shell command that starts the gateway under test."
    ),
    gateway_running: bool = typer.Option(
        False,
        "--gateway-running",
        help="Practice: write OUT/gateway.env, wait for your own gateway started with it.",
    ),
    wait_gateway: float = typer.Option(
        120.0,
        "--wait-gateway",
        min=1.0,
        help="With --gateway-running: seconds to wait for your gateway's first message.",
    ),
    submission: Path | None = typer.Option(
        None, "--submission", help="Submission folder (gateway.cmd or run.sh; broker.yaml)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for result.json, report.html, logs."),
    labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP),
    sandbox: str | None = typer.Option(
        None,
        "--sandbox",
        help="auto (bubblewrap when it runs here), bubblewrap (refuse without it) or none; "
        "default IIOTLAB_SANDBOX or auto.",
    ),
    hide: list[Path] = typer.Option(
        [], "--hide", help="A path the submission must not see (repeatable)."
    ),
) -> None:
    """Grade one student's gateway on a lab; exit 0 when gradable (the score is in the result)."""
    from grader.catalog import resolve_lab
    from grader.pipeline import grade_one

    result = asyncio.run(
        grade_one(
            resolve_lab(lab, labs),
            student,
            out=out,
            gateway_cmd=gateway_cmd,
            submission=submission,
            gateway_running=gateway_running,
            gateway_wait_s=wait_gateway,
            sandbox=sandbox,
            hide=hide,
        )
    )
    if not result.gradable:
        typer.secho(f"NOT GRADABLE: {result.reason}", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(3)
    typer.echo(f"{result.lab} {result.student}: {result.score:g} / {result.max_score:g}")
    if result.submission_error is not None:
        typer.secho(result.submission_error["en"], err=True, fg=typer.colors.RED)
    for check in result.checks:
        mark = "PASS" if check.passed else "FAIL"
        typer.echo(
            f"  {mark} {check.id:<28} {check.points:>6g} / {check.max_points:g}  {check.message}"
        )
    typer.echo(f"report: {out / 'report.html'}")


def _verify(
    result: Path = typer.Argument(
        ..., help="A result.json, an exam-result.json or an exam certificate (.html)."
    ),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="PEM public key (default: this machine's signing key)."
    ),
) -> None:
    """Check a result's Ed25519 signature; exit 1 on any change."""
    from grader.results import read_result_data
    from grader.signing import load_public_key, load_signing_key, verify
    from iiotlab.errors import SignatureError
    from iiotlab.settings import Settings

    if result.suffix.lower() in (".html", ".htm"):  # an exam certificate embeds its record
        from grader.exam.closing import read_certificate

        data = read_certificate(result)
    else:
        data = read_result_data(result)
    if public_key is not None:
        key = load_public_key(public_key)
    else:
        key = load_signing_key(Settings.from_env()).private.public_key()
    try:
        verify(data, key)
    except SignatureError as exc:
        typer.secho(f"INVALID: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if data.get("kind") == "iiotlab-exam-result":
        from grader.exam.closing import verification_code

        typer.echo(
            f"valid: exam {data.get('exam')} {data.get('student')} {data.get('score')} / "
            f"{data.get('max_score')} passed={data.get('passed')} "
            f"code {verification_code(data)}"
        )
        return
    typer.echo(f"valid: {data.get('lab')} {data.get('student')} {data.get('score')}")


def _grade_manual(
    result: Path = typer.Argument(..., help="A result.json signed by this grader."),
    check: str = typer.Option(..., "--check", help="Id of the lab's manual check."),
    points: float = typer.Option(..., "--points", help="Points awarded (0 to its max)."),
    by: str = typer.Option(..., "--by", help="Who scored it (recorded in the evidence)."),
    note: str = typer.Option("", "--note", help="Why (recorded in the evidence)."),
) -> None:
    """Enter the instructor's points for a manual check and re-sign the result."""
    from grader.manual import score_manual
    from grader.signing import load_signing_key
    from iiotlab.errors import SignatureError
    from iiotlab.settings import Settings

    try:
        signed = score_manual(
            result, check, points, by, note, load_signing_key(Settings.from_env())
        )
    except SignatureError as exc:
        typer.secho(f"INVALID: {exc}; not amended", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    typer.echo(
        f"{signed.lab} {signed.student}: {signed.score:g} / {signed.max_score:g}"
        f" (pending {signed.pending_points:g})"
    )


@class_app.command("grade")
def _class_grade(
    lab: str = typer.Option(..., "--lab", help=LAB_HELP),
    roster: Path = typer.Option(..., "--roster", help="CSV with a 'student' column."),
    submissions: Path = typer.Option(..., "--submissions", help="Folder of <student>/ folders."),
    out: Path = typer.Option(..., "--out", help="Folder for per-student results + gradebook."),
    parallel: int = typer.Option(2, "--parallel", min=1, max=64, help="Students at a time."),
    labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Redis broker URL (redis://HOST:PORT/DB): one job per student to the "
        "`iiotlab worker`s instead of grading here (needs iiotlab[cluster]).",
    ),
) -> None:
    """Grade every student of a roster, N at a time; writes gradebook.csv."""
    from grader.catalog import resolve_lab
    from grader.classmode import StudentGrader, grade_class

    lab_path = resolve_lab(lab, labs)
    with contextlib.ExitStack() as stack:
        grader: StudentGrader | None = None
        if cluster is not None:
            from grader.cluster.cli import cluster_grader

            grader = stack.enter_context(cluster_grader(cluster))
        rows = asyncio.run(
            grade_class(lab_path, roster, submissions, out, parallel=parallel, grader=grader)
        )
    typer.echo(f"gradebook: {out / 'gradebook.csv'} ({len(rows)} students)")


@lab_app.command("list")
def _lab_list(labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP)) -> None:
    """List the labs (yours from --labs, then the built-in ones): track, positions, plants,
    duration and points."""
    from grader.catalog import list_labs
    from grader.curriculum import lab_row, plants_text
    from grader.spec import load_lab

    entries = list_labs(labs)
    if not entries:
        where = f"in {labs} nor " if labs is not None else ""
        typer.secho(
            f"no labs found {where}among the built-in labs (package iiotlab_labs); "
            "reinstall iiotlab, or give your own labs folder with --labs DIR",
            err=True,
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(1)
    rows = [(entry, lab_row(load_lab(entry.path))) for entry in entries]
    width = max(len(row.id) for _, row in rows)
    plants_width = max(len(plants_text(row)) for _, row in rows)
    typer.echo(
        f"{'lab':<{width}}  {'track':<11} {'positions':<12} {'plant':<{plants_width}} "
        f"{'duration':>8} {'points':>6}  title"
    )
    for entry, row in rows:
        positions = ",".join(str(p) for p in row.positions)
        source = "" if entry.builtin else f"  ({entry.path.parent})"
        typer.echo(
            f"{row.id:<{width}}  {row.track:<11} {positions:<12} "
            f"{plants_text(row):<{plants_width}} {row.duration_s:>7g}s {row.points:>6g}  "
            f"{row.title}{source}"
        )


@lab_app.command("matrix")
def _lab_matrix(
    write: Path | None = typer.Option(
        None, "--write", help="Replace the generated block of this file (docs/labs.md)."
    ),
    check: Path | None = typer.Option(
        None, "--check", help="Exit 1 when this file's generated block differs from the labs."
    ),
    labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP),
) -> None:
    """Print the labs table and the positions x labs matrix (Markdown), generated from lab.yaml."""
    from grader.curriculum import run

    if write is not None and check is not None:
        raise typer.BadParameter("give --write or --check, not both")
    status = run(write, check, labs)
    if status:
        raise typer.Exit(status)


@lab_app.command("check")
def _lab_check(
    lab: str = typer.Argument(..., help=LAB_HELP),
    labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP),
) -> None:
    """Validate a lab.yaml (unknown keys and check kinds are errors with their line)."""
    from grader.catalog import resolve_lab
    from grader.spec import load_lab

    spec = load_lab(resolve_lab(lab, labs))
    typer.echo(
        json.dumps(
            {"id": spec.id, "checks": [c.id for c in spec.checks], "max_score": spec.max_score}
        )
    )


@lab_app.command("show")
def _lab_show(
    lab: str = typer.Argument(..., help=LAB_HELP),
    lang: ReadmeLanguage = typer.Option(ReadmeLanguage.en, "--lang", help="README language."),
    labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP),
) -> None:
    """Print a lab's README (the instructions)."""
    from grader.catalog import readme_path, resolve_lab

    readme = readme_path(resolve_lab(lab, labs), lang.value)
    typer.echo(readme.read_text(encoding="utf-8"))


@lab_app.command("copy")
def _lab_copy(
    lab: str = typer.Argument(..., help=LAB_HELP),
    target: Path = typer.Argument(..., help="A new or empty folder to work in."),
    labs: Path | None = typer.Option(None, "--labs", help=LABS_HELP),
) -> None:
    """Copy a lab's READMEs and starter into a folder to work in (never the solution)."""
    from grader.catalog import copy_lab, resolve_lab

    written = copy_lab(resolve_lab(lab, labs), target)
    for path in written:
        typer.echo(f"  {path}")
    typer.echo(f"grade it with: iiotlab grade {lab} --student YOU --submission {target} --out OUT")


@lab_app.command("kinds")
def _lab_kinds() -> None:
    """List every check kind (built-in and plugins) with its params."""
    from grader.checks.registry import default_registry

    for kind in default_registry().kinds():
        params = ", ".join(kind.params.model_fields)
        typer.echo(f"{kind.name:<30} {kind.summary}  params: {params or '-'}")


@class_app.command("verify")
def _class_verify(
    out: Path = typer.Argument(..., help="The class's out folder (gradebook.csv, <student>/)."),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="PEM public key (default: this machine's signing key)."
    ),
) -> None:
    """Recompute gradebook.csv from the signed results; exit 1 on any edited row or result."""
    from grader.classmode import verify_gradebook
    from grader.signing import load_public_key, load_signing_key
    from iiotlab.settings import Settings

    if public_key is not None:
        key = load_public_key(public_key)
    else:
        key = load_signing_key(Settings.from_env()).private.public_key()
    problems = verify_gradebook(out, key)
    for problem in problems:
        typer.secho(f"INVALID: {problem}", err=True, fg=typer.colors.RED)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"valid: {out / 'gradebook.csv'} matches its signed results")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the iiotlab CLI."""
    app.command("grade")(_grade)
    app.command("verify")(_verify)
    app.command("grade-manual")(_grade_manual)
    app.command("worker")(cluster_worker)
    app.add_typer(class_app, name="class")
    app.add_typer(lab_app, name="lab")
    from grader.exam.cli import register as register_exam

    register_exam(app)
