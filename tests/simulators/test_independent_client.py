"""An independent client (libmodbus' mbpoll) reads `iiotlab sim`, decoded per the datasheet."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.registers import RegisterFormat, decode
from simulators.variants import build_datasheet

pytestmark = pytest.mark.integration
SECRET = "mbpoll-secret"
MBPOLL = shutil.which("mbpoll")
_TABLE_TYPE = {"coil": "0", "discrete": "1", "input": "3", "holding": "4"}


def _mbpoll(port: int, unit: int, table: str, address: int, count: int) -> list[int]:
    assert MBPOLL is not None
    command = [
        MBPOLL,
        "-m",
        "tcp",
        "-p",
        str(port),
        "-a",
        str(unit),
        "-0",
        "-r",
        str(address),
        "-c",
        str(count),
        "-t",
        _TABLE_TYPE[table],
        "-1",
        "-o",
        "2",
        "127.0.0.1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    values = re.findall(r"^\[(\d+)\]:\s+(-?\d+)", done.stdout, re.MULTILINE)
    assert [int(a) for a, _ in values] == list(range(address, address + count)), done.stdout
    return [int(v) & 0xFFFF for _, v in values]


def _decode(tag: TagSpec, words: list[int]) -> object:
    m = tag.modbus
    assert m is not None
    if m.table in ("coil", "discrete"):
        return bool(words[0])
    if m.bit is not None:
        return bool((words[0] >> m.bit) & 1)
    return decode(words, RegisterFormat(m.type, m.word_order, m.scale, m.offset, m.length or 1))


def _start_sim(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    env = {**os.environ, "IIOTLAB_COURSE_SECRET": SECRET, "IIOTLAB_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iiotlab.cli",
            "sim",
            "--plant",
            "all",
            "--lab",
            "lab1",
            "--student",
            "carol",
            "--modbus-port",
            "0",
            "--opcua-port",
            "0",
            "--no-opcua",
            "--truth-log",
            str(tmp_path / "truth.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("unit") and line.strip().endswith("energy-1"):
            break
    text = "".join(lines)
    port = int(re.search(r"modbus: 127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
    unit = int(re.search(r"unit (\d+): tank-1", text).group(1))  # type: ignore[union-attr]
    return process, port, unit


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll (Debian package mbpoll) is not installed")
def test_mbpoll_reads_the_datasheet_values(tmp_path: Path) -> None:
    sheet: Datasheet = build_datasheet("tank", "lab1", "carol", SECRET)
    process, port, unit = _start_sim(tmp_path)
    try:
        assert unit == sheet.modbus.unit_id
        expected = {"pump_speed_sp": 50.0, "valve_opening": 30.0, "pump_on": False}
        for name, value in expected.items():
            tag = sheet.tag(name)
            m = tag.modbus
            assert m is not None
            count = (
                1
                if m.table in ("coil", "discrete")
                else RegisterFormat(m.type, m.word_order, m.scale, m.offset, m.length or 1).count
            )
            decoded = _decode(tag, _mbpoll(port, unit, m.table, m.address, count))
            assert decoded == pytest.approx(value, abs=tag.tolerance or 1e-6), name
        serial = sheet.tag("serial_number")
        assert serial.modbus is not None
        words = _mbpoll(port, unit, serial.modbus.table, serial.modbus.address, 8)
        text = _decode(serial, words)
        assert isinstance(text, str) and re.fullmatch(r"TA\d{10}", text)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "stopped" in out
    assert (tmp_path / "truth.jsonl").stat().st_size > 0
