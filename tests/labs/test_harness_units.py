"""The curriculum harness's own parts, without grading: mutant.yaml, discovery, messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from grader.catalog import LabEntry
from tests.labs.conftest import selected_jobs
from tests.labs.curriculum import (
    Job,
    MutantFormatError,
    Outcome,
    Submission,
    WeightedGate,
    discover_labs,
    interleaved,
    lab_submissions,
    lab_weight,
    load_mutant,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NET01 = ROOT / "labs" / "net-01-modbus-datasheet"


def mutant(tmp_path: Path, text: str, *, command: bool = True) -> Path:
    folder = tmp_path / "mutants" / "m"
    folder.mkdir(parents=True)
    (folder / "mutant.yaml").write_text(text, encoding="utf-8")
    if command:
        (folder / "gateway.cmd").write_text("python gateway.py\n")
    return folder


GOOD = 'description: {en: "wrong", zh: "错"}\nloses: [values]\n'


def test_a_good_mutant_loads(tmp_path: Path) -> None:
    loaded = load_mutant(mutant(tmp_path, GOOD), ["values", "contract"])
    assert loaded.loses == {"values"} and loaded.description == {"en": "wrong", "zh": "错"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('description: {en: "x"}\nloses: [values]\n', "en and zh"),
        ('description: {en: "x", zh: "y"}\nloses: []\n', "non-empty list"),
        ('description: {en: "x", zh: "y"}\nloses: [value]\n', "value, not a check"),
        ('description: {en: "x", zh: "y"}\n', "exactly the keys"),
        ('description: {en: "x", zh: "y"}\nloses: [values]\nnote: 1\n', "exactly the keys"),
    ],
)
def test_a_bad_mutant_yaml_says_what_to_change(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(MutantFormatError, match=says):
        load_mutant(mutant(tmp_path, text), ["values", "contract"])


def test_a_mutant_is_a_complete_submission(tmp_path: Path) -> None:
    with pytest.raises(MutantFormatError, match="complete submission"):
        load_mutant(mutant(tmp_path, GOOD, command=False), ["values"])


def test_discovery_reports_a_broken_lab_instead_of_failing_collection(tmp_path: Path) -> None:
    broken = tmp_path / "bad-01-broken"
    broken.mkdir()
    (broken / "lab.yaml").write_text("id: bad-01-broken\nnot_a_key: 1\n")
    (good,) = discover_labs([LabEntry("net-01-modbus-datasheet", NET01, True)])
    (bad,) = discover_labs([LabEntry("bad-01-broken", broken, False)])
    assert good.spec is not None and good.error is None
    assert bad.spec is None and bad.error and "lab.yaml:1" in bad.error
    assert lab_submissions(bad) == []


def test_a_lab_has_solution_then_mutants_then_starter() -> None:
    (lab,) = discover_labs([LabEntry("net-01-modbus-datasheet", NET01, True)])
    found = lab_submissions(lab)
    assert found[0].kind == "solution" and found[-1].kind == "starter"
    mutants = [s for s in found if s.kind == "mutant"]
    assert len(mutants) >= 2 and all(m.loses for m in mutants)
    assert all(s.duration_s == 6 for s in found)


def test_a_failure_message_shows_every_check_and_the_logs(tmp_path: Path) -> None:
    (tmp_path / "gateway.log").write_text("line 1\nTraceback: boom\n")
    job = Job(Submission("net-01", NET01, "solution", "solution", NET01 / "solution"), "ana")
    result = {
        "gradable": True,
        "score": 80,
        "max_score": 100,
        "reason": None,
        "checks": [
            {"id": "values", "points": 80, "max_points": 80, "passed": True, "message": "ok"},
            {
                "id": "contract",
                "points": 0,
                "max_points": 20,
                "passed": False,
                "message": "ts is not in milliseconds",
            },
        ],
    }
    text = Outcome(job, result, 12.0, tmp_path).describe()
    assert "net-01/solution/ana" in text
    assert "PASS values 80/80: ok" in text
    assert "FAIL contract 0/20: ts is not in milliseconds" in text
    assert "Traceback: boom" in text


def test_only_the_selected_tests_jobs_are_graded() -> None:
    class Item:
        def __init__(self, params: dict[str, object]) -> None:
            self.callspec = type("CallSpec", (), {"params": params})()

    job = Job(Submission("net-01", NET01, "solution", "solution", NET01 / "solution"), "bo")
    items = [Item({"job": job}), Item({"lab": "x"}), Item({})]
    assert selected_jobs(items) == [job]  # type: ignore[arg-type]


def test_a_line_of_twenty_plcs_takes_two_slots() -> None:
    assert [lab_weight(n) for n in (0, 1, 5, 10, 11, 20)] == [1, 1, 1, 1, 2, 2]
    int02 = next(lab for lab in discover_labs() if lab.id == "int-02-sizing")
    assert {s.weight for s in lab_submissions(int02)} == {2}


def test_jobs_of_one_lab_are_spread_over_the_run() -> None:
    def job(lab: str, name: str, duration: float) -> Job:
        return Job(Submission(lab, NET01, "mutant", name, NET01, duration_s=duration), "ana")

    jobs = [job("b", n, 30) for n in "xyz"] + [job("a", n, 30) for n in "xy"] + [job("c", "x", 45)]
    assert [j.key for j in interleaved(jobs)] == [
        "c/x/ana",
        "a/x/ana",
        "b/x/ana",
        "a/y/ana",
        "b/y/ana",
        "b/z/ana",
    ]


async def test_the_weighted_gate_never_holds_more_than_its_slots() -> None:
    gate = WeightedGate(5)
    held: list[int] = []
    peak = 0

    async def run(weight: int) -> None:
        nonlocal peak
        async with gate.taking(weight):
            held.append(min(weight, gate.slots))
            peak = max(peak, sum(held))
            await asyncio.sleep(0.01)
            held.remove(min(weight, gate.slots))

    await asyncio.gather(*(run(w) for w in (4, 1, 1, 4, 2, 9, 1)))
    assert peak == 5 and not held  # a weight over the slots takes them all


async def test_a_widened_gate_lets_more_in_and_holders_keep_their_slots() -> None:
    gate = WeightedGate(1)
    inside: list[int] = []
    release = asyncio.Event()

    async def run(name: int) -> None:
        async with gate.taking(1):
            inside.append(name)
            await release.wait()

    tasks = [asyncio.create_task(run(n)) for n in range(3)]
    await asyncio.sleep(0.05)
    assert inside == [0]
    await gate.resize(3)
    await asyncio.sleep(0.05)
    assert inside == [0, 1, 2]
    release.set()
    await asyncio.gather(*tasks)
