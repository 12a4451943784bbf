"""Full grading run of sec-02: the submission is a Modbus TCP proxy in front of the PLC.

The solution (reads forwarded, writes answered with exception 01) scores full marks; the
starter (forwards everything) keeps the reads and loses the write parts, and the PLC's
write log shows the grader's writes got through it.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.checks.modbus_protection import ModbusProtectionParams, probe_protection
from grader.observation import ProbeRecord
from grader.probes.context import ProbeContext
from grader.spec import load_lab
from simulators.variants import build_datasheet
from tests.grader.grading_helpers import grade_folders

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "sec-02-modbus-write-protection"
WRITES = (
    "FC 5 (write single coil)",
    "FC 6 (write single register)",
    "FC 15 (write multiple coils)",
    "FC 16 (write multiple registers)",
)


@pytest.mark.timeout(90)
async def test_solution_refuses_writes_and_starter_lets_them_through(tmp_path: Path) -> None:
    command = f"exec {sys.executable} proxy.py"
    rows, checks = await grade_folders(
        LAB, tmp_path, {"alice": ("solution", command), "bob": ("starter", command)}
    )
    alice, bob = checks["alice"], checks["bob"]
    failed = {k: c["evidence"] for k, c in alice.items() if not c["passed"]}
    assert rows["alice"].score == rows["alice"].max_score == 100, failed
    saw = alice["writes"]["evidence"]["saw"]
    assert all(saw["writes_refused"][fc] == "exception 01 (illegal function)" for fc in WRITES)
    assert saw["plc_unchanged"]["writes_at_plc"] == 0
    assert int(saw["survives"]["reads_after"].split()[0]) >= 11  # of the tank's 12 tags
    assert int(alice["reads"]["evidence"]["saw"]["reads"]["matching"].split()[0]) >= 11

    assert rows["bob"].gradable
    assert bob["reads"]["passed"] and bob["reads"]["points"] == 30
    assert not bob["writes"]["passed"]
    assert bob["writes"]["points"] == pytest.approx(70 / 7, abs=0.01)  # only `survives`
    saw = bob["writes"]["evidence"]["saw"]
    assert all(saw["writes_refused"][fc].startswith("success") for fc in WRITES)
    assert saw["plc_unchanged"]["writes_at_plc"] >= 4  # the simulator logged them
    written = {w["tag"] for w in saw["plc_unchanged"]["first"]}
    assert written <= {"pump_on", "pump_speed_sp", "valve_opening"} and "pump_on" in written


class RudeProxy:
    """Answers reads with zeros in two TCP pieces, and hangs up on any write."""

    def __init__(self) -> None:
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                header = await reader.readexactly(7)
                transaction, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if pdu[0] not in (1, 2, 3, 4):
                    break
                count = struct.unpack(">H", pdu[3:5])[0]
                size = (count + 7) // 8 if pdu[0] in (1, 2) else 2 * count
                reply = bytes([pdu[0], size]) + bytes(size)
                frame = struct.pack(">HHHB", transaction, 0, len(reply) + 1, unit) + reply
                writer.write(frame[:5])
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(frame[5:])
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@dataclass
class ProxyOnly:
    student_proxy_port: int | None


@pytest.mark.timeout(30)
async def test_probe_reconnects_when_a_proxy_hangs_up_on_writes() -> None:
    rude = RudeProxy()
    server = await asyncio.start_server(rude.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lab = load_lab(LAB)
    sheet = build_datasheet("tank", lab.id, "carol", "secret")
    params = ModbusProtectionParams(at=0, timeout_s=1)
    records: list[ProbeRecord] = []
    context: ProbeContext[Any] = ProbeContext(
        "c",
        params,
        lab,
        sheet,
        "carol",
        "tank-1",
        ProxyOnly(port),  # type: ignore[arg-type]
        time.monotonic(),
        records,
    )
    async with server:
        await probe_protection(context)
    by_name = {r.name: r for r in records}
    reads = [r for r in records if r.name.startswith("read:")]
    assert reads and all(r.ok for r in reads)  # replies split in two pieces still parse
    for function in (5, 6, 15, 16):
        write = by_name[f"write:fc{function}"]
        assert not write.ok and "connection closed" in write.saw
    assert by_name["connection"].saw == "closed after FC 5, 6, 15, 16"
    assert all(r.ok for r in records if r.name.startswith("after:"))  # reconnected
    assert rude.connections == 5  # reads + FC 5, then one each for FC 6, 15, 16 and the reads
