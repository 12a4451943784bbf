"""Cluster grading pieces alone: archives, job payloads, refusals, the extra's guard."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from grader.catalog import resolve_lab
from grader.checks.registry import default_registry
from grader.classmode import StudentJob
from grader.cluster.archive import (
    ArchiveError,
    ArchiveTooLargeError,
    pack_folder,
    unpack_folder,
)
from grader.cluster.celery_app import ClusterQueue, safe_url
from grader.cluster.coordinator import ClusterGrader, pack_lab
from grader.cluster.extra import INSTALL_HINT, ClusterError, require_cluster_extra
from grader.cluster.jobs import GradingJob, LabPayload, decode, encode
from grader.cluster.worker_job import JOB_FOLDER_PREFIX, run_job
from grader.results import read_result_data
from grader.signing import load_signing_key, verify, write_new_key
from grader.spec import prepare_lab
from iiotlab.cli import build_app
from iiotlab.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NET01 = ROOT / "labs" / "net-01-modbus-datasheet"
MiB = 2**20


def test_a_folder_round_trips_without_caches(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "pkg" / "__pycache__").mkdir(parents=True)
    (source / "gateway.cmd").write_text("python gateway.py\n")
    (source / "pkg" / "mod.py").write_text("x = 1\n")
    (source / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"\0")
    (source / "solution").mkdir()
    (source / "solution" / "answer.py").write_text("secret\n")
    target = tmp_path / "target"
    data = pack_folder(source, MiB, skip={"solution"})
    unpack_folder(data, target, max_bytes=MiB, max_files=10)
    found = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert found == ["gateway.cmd", "pkg/mod.py"]


def test_packing_past_the_cap_says_what_to_leave_out(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(os.urandom(300_000))
    with pytest.raises(ArchiveTooLargeError, match="leave out virtual environments"):
        pack_folder(tmp_path, 100_000)


def _archive(members: dict[str, bytes], *, link: tuple[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        if link is not None:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            archive.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("members", "link"),
    [
        ({"../escaped.txt": b"x"}, None),
        ({}, ("evil", "/etc/passwd")),
        ({}, ("evil", "../../outside")),
    ],
    ids=["dot-dot", "absolute-symlink", "relative-symlink-out"],
)
def test_unpacking_refuses_what_leaves_the_folder(
    tmp_path: Path, members: dict[str, bytes], link: tuple[str, str] | None
) -> None:
    with pytest.raises(ArchiveError):
        unpack_folder(_archive(members, link=link), tmp_path / "t", max_bytes=MiB, max_files=9)
    assert not (tmp_path / "escaped.txt").exists()


def test_an_absolute_name_lands_inside_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "t"
    unpack_folder(_archive({f"{tmp_path}/abs.txt": b"x"}), target, max_bytes=MiB, max_files=9)
    assert not (tmp_path / "abs.txt").exists()
    assert (target / tmp_path.relative_to("/") / "abs.txt").read_bytes() == b"x"


def test_a_gzip_bomb_writes_nothing(tmp_path: Path) -> None:
    data = _archive({"zeros.bin": bytes(4 * MiB)})
    assert len(data) < 50_000
    with pytest.raises(ArchiveError, match="expands to"):
        unpack_folder(data, tmp_path / "t", max_bytes=MiB, max_files=9)
    assert not any((tmp_path / "t").iterdir())


def test_a_builtin_lab_travels_as_its_id_and_an_own_lab_as_its_files(tmp_path: Path) -> None:
    plan = prepare_lab(NET01, default_registry())
    builtin = pack_lab(plan, resolve_lab(plan.lab.id))
    assert builtin.archive is None and builtin.id == "net-01-modbus-datasheet"
    own_folder = tmp_path / "my-labs" / plan.lab.id
    shutil.copytree(NET01, own_folder)
    own = pack_lab(plan, own_folder)
    assert own.archive is not None and own.digest == builtin.digest
    target = tmp_path / "unpacked"
    unpack_folder(decode(own.archive), target, max_bytes=MiB, max_files=99)
    assert (target / "lab.yaml").is_file()
    assert not (target / "solution").exists() and not (target / "starter").exists()


def _job(lab: LabPayload, time_limit_s: float = 30) -> GradingJob:
    return GradingJob(
        lab=lab,
        student="alice",
        submission=encode(pack_folder(NET01 / "solution", MiB)),
        time_limit_s=time_limit_s,
        submitted=time.time(),
    )


def test_a_worker_refuses_a_job_longer_than_its_visibility_timeout() -> None:
    lab = LabPayload(id="net-01-modbus-datasheet", digest="0" * 64)
    outcome = run_job(_job(lab, 126), worker="w1", visibility_timeout_s=60)
    assert outcome.status == "refused"
    assert "--visibility-timeout of at least 146" in (outcome.message or "")


def test_a_worker_refuses_a_builtin_lab_of_another_version() -> None:
    lab = LabPayload(id="net-01-modbus-datasheet", digest="0" * 64)
    outcome = run_job(_job(lab), worker="w1", visibility_timeout_s=600)
    assert outcome.status == "refused"
    assert "another iiotlab version" in (outcome.message or "")


def _too_large(submission: Path) -> None:
    (submission / "dataset.bin").write_bytes(os.urandom(200_000))


def _link_out(submission: Path) -> None:
    (submission / "config.yaml").symlink_to("/etc/hostname")


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (_too_large, "too large to send to a grading machine"),
        (_link_out, "config.yaml"),
    ],
    ids=["too-large", "link-out"],
)
async def test_a_submission_that_cannot_travel_is_a_signed_zero_made_on_the_coordinator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spoil: Callable[[Path], None], says: str
) -> None:
    """Nothing is sent: the coordinator signs a graded 0 that says what to change."""
    key_file = tmp_path / "keys" / "key.pem"
    write_new_key(key_file)
    monkeypatch.setenv("IIOTLAB_SIGNING_KEY", str(key_file))
    monkeypatch.setenv("IIOTLAB_DATA_DIR", str(tmp_path / "data"))
    settings = Settings.from_env()
    submission = tmp_path / "alice"
    shutil.copytree(NET01 / "solution", submission)
    spoil(submission)
    queue = ClusterQueue("redis://127.0.0.1:1/0")  # nothing listens: no job may be sent
    grader = ClusterGrader(
        queue, settings=settings, key=load_signing_key(settings), submission_cap=100_000
    )
    out = tmp_path / "out" / "alice"
    await grader.grade(StudentJob(NET01, "alice", submission, out, ()))
    queue.close()
    data = read_result_data(out / "result.json")
    verify(data, load_signing_key(settings).private.public_key())
    assert data["gradable"] and data["score"] == 0
    assert says in data["submission_error"]["en"]
    assert (out / "report.html").is_file() and (out / "junit.xml").is_file()


def test_an_unreachable_broker_is_an_error_that_hides_the_password() -> None:
    queue = ClusterQueue("redis://:s3cret@127.0.0.1:1/0")
    with pytest.raises(ClusterError, match="cannot reach the cluster broker") as caught:
        queue.check()
    assert "s3cret" not in str(caught.value)
    assert safe_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    with pytest.raises(ClusterError, match="must be a Redis URL"):
        ClusterQueue("amqp://h/")


def test_without_the_extra_cluster_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "celery", None)  # `import celery` now fails
    with pytest.raises(ClusterError) as caught:
        require_cluster_extra()
    assert INSTALL_HINT in str(caught.value) and "celery is missing" in str(caught.value)


def test_without_the_extra_the_cli_works_and_cluster_says_what_to_install(
    tmp_path: Path,
) -> None:
    """In a process where celery and redis cannot import: the local CLI loads, and
    `class grade --cluster` exits 2 with the install command (no traceback)."""
    roster = tmp_path / "roster.csv"
    roster.write_text("student\nalice\n")
    script = (
        "import sys; sys.modules['celery'] = None; sys.modules['redis'] = None\n"
        "import grader.classmode, grader.cli, grader.cluster.celery_app\n"
        "import grader.cluster.coordinator, grader.cluster.worker_job\n"
        "from iiotlab.cli import main\n"
        "sys.argv = ['iiotlab', 'class', 'grade', '--lab', 'net-01-modbus-datasheet',\n"
        f"  '--roster', {str(roster)!r}, '--submissions', {str(tmp_path)!r},\n"
        f"  '--out', {str(tmp_path / 'out')!r}, '--cluster', 'redis://127.0.0.1:1/0']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 2, done.stderr
    assert INSTALL_HINT in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_compose_runs_redis_with_persistence_and_a_scalable_worker() -> None:
    from typer.main import get_command

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    redis, worker = compose["services"]["redis"], compose["services"]["worker"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N
    build = worker["build"]
    assert (ROOT / "docker" / build["context"] / build["dockerfile"]).resolve().is_file()
    args = list(worker["command"])
    assert args[0] == "worker"
    cli = get_command(build_app())
    context = cli.make_context("iiotlab", list(args))
    name, command, rest = cli.resolve_command(context, list(args))  # type: ignore[attr-defined]
    command.make_context(name, rest, parent=context)  # raises on an unknown option


def test_the_worker_image_copies_what_the_main_image_copies() -> None:
    def copies(name: str) -> list[str]:
        lines = (ROOT / "docker" / name).read_text().splitlines()
        return [line for line in lines if line.startswith("COPY ")]

    assert copies("worker.Dockerfile") == copies("Dockerfile")


@pytest.mark.parametrize(
    ("field", "value"), [("student", "../../etc"), ("lab", "a/b"), ("spec", "../lab.yaml")]
)
def test_a_job_names_no_path_on_the_worker(field: str, value: str) -> None:
    lab = {"id": "net-01-modbus-datasheet", "digest": "0" * 64}
    if field in ("lab", "spec"):
        lab["id" if field == "lab" else "spec_name"] = value
    job = {
        "lab": lab,
        "student": value if field == "student" else "alice",
        "submission": "",
        "time_limit_s": 30,
        "submitted": 0,
    }
    with pytest.raises(ValidationError, match="is not a valid id"):
        GradingJob.model_validate(job)


def test_a_job_sweeps_the_folders_of_dead_pool_processes(tmp_path: Path) -> None:
    """A worker killed mid-job leaves its job folder (a student's submission) behind; the
    next job on the machine deletes it, and never a live process's folder."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    temp = Path(tempfile.gettempdir())
    stale = temp / f"{JOB_FOLDER_PREFIX}{gone.pid}-test"
    live = temp / f"{JOB_FOLDER_PREFIX}{os.getpid()}-test"
    for folder in (stale, live):
        (folder / "submissions").mkdir(parents=True)
    lab = LabPayload(id="net-01-modbus-datasheet", digest="0" * 64)
    try:
        run_job(_job(lab), worker="w1", visibility_timeout_s=600)  # refused: another lab digest
        assert not stale.exists() and live.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)
