"""Simulator capacity: Modbus reads/s vs a bare pymodbus server, and plants per process.

1. Reads/s of one tank served by iiotlab's ModbusPlcServer (live snapshot, datasheet
   encoding, write checks) against a bare pymodbus SimDevice server holding the same
   registers, measured in the same run with the same raw-socket clients.
2. Plants one process carries at 10 Hz: N single-plant simulations (a class of N students)
   while another process polls every plant once a second; reported: achieved tick rate and
   p50/p99 Modbus read latency. Target: 50 plants with p99 < 20 ms on 2 cores.

Run: python bench/sim_capacity.py [--quick]. Bounded to about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import struct
import time
from contextlib import AsyncExitStack

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.register_map import RegisterMap
from simulators.simulation import Simulation, SimulationConfig
from simulators.variants import PLANTS

SECRET = "bench-secret"


def _runs(addresses: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for address in sorted(addresses):
        if runs and runs[-1][0] + runs[-1][1] == address:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((address, 1))
    return runs


def _request(sim: Simulation, plant: str) -> tuple[bytes, int]:
    """A read of the plant's longest contiguous register run, and its response length."""
    sheet = sim.datasheets[plant]
    tables = RegisterMap(sheet).words(sim.runtime(plant).snapshot())
    best = max(
        ((table, run) for table in ("holding", "input") for run in _runs(list(tables[table]))),
        key=lambda item: item[1][1],
    )
    table, (address, count) = best
    count = min(count, 125)
    function = 3 if table == "holding" else 4
    pdu = struct.pack(">BHH", function, address, count)
    mbap = struct.pack(">HHHB", 1, 0, len(pdu) + 1, sheet.modbus.unit_id)
    return mbap + pdu, 9 + 2 * count


async def _poll(
    port: int,
    request: bytes,
    reply_len: int,
    stop_at: float,
    period: float = 0.0,
    phase: float = 0.0,
) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(phase)  # gateways are not synchronised: spread the polls
    latencies: list[float] = []
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            reply = await reader.readexactly(reply_len)
            latencies.append(time.perf_counter() - start)
            assert reply[7] < 0x80, f"exception {reply[8]}"
            if period:
                await asyncio.sleep(max(0.0, period - (time.perf_counter() - start)))
    finally:
        writer.close()
    return latencies


async def _throughput(port: int, request: bytes, reply_len: int, seconds: float) -> float:
    stop_at = time.perf_counter() + seconds
    results = await asyncio.gather(*(_poll(port, request, reply_len, stop_at) for _ in range(4)))
    return sum(len(r) for r in results) / seconds


def _bare_device(sim: Simulation, plant: str) -> SimDevice:
    sheet = sim.datasheets[plant]
    tables = RegisterMap(sheet).words(sim.runtime(plant).snapshot())
    blocks: list[list[SimData]] = []
    for table in ("coil", "discrete", "holding", "input"):
        words = tables[table]
        kind = DataType.BITS if table in ("coil", "discrete") else DataType.REGISTERS
        blocks.append(
            [
                SimData(
                    start, values=[int(words[a]) for a in range(start, start + n)], datatype=kind
                )
                for start, n in _runs(list(words))
            ]
            or [SimData(0, values=[0], datatype=kind)]
        )
    return SimDevice(sheet.modbus.unit_id, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]))


async def compare_with_bare(seconds: float) -> tuple[float, float]:
    config = SimulationConfig(
        plants=("tank",), lab="bench", student="s0", course_secret=SECRET, enable_opcua=False
    )
    async with Simulation(config) as sim:
        request, reply_len = _request(sim, "tank")
        ours = await _throughput(sim.modbus_port, request, reply_len, seconds)
        bare = ModbusTcpServer(_bare_device(sim, "tank"), address=("127.0.0.1", 0))
        await bare.serve_forever(background=True)
        try:
            bare_port = bare.transport.sockets[0].getsockname()[1]
            baseline = await _throughput(bare_port, request, reply_len, seconds)
        finally:
            await bare.shutdown()
    words = (reply_len - 9) // 2
    print(f"reads/s, one tank, {words}-register read, 4 connections:")
    print(f"  iiotlab ModbusPlcServer : {ours:8.0f}")
    print(f"  bare pymodbus SimDevice : {baseline:8.0f}")
    print(f"  ratio                   : {ours / baseline:8.2f}")
    return ours, baseline


def _load_process(
    targets: list[tuple[int, bytes, int]], seconds: float, queue: multiprocessing.Queue[list[float]]
) -> None:
    async def run() -> list[float]:
        stop_at = time.perf_counter() + seconds
        polls = [
            _poll(port, req, n, stop_at, period=1.0, phase=index / len(targets))
            for index, (port, req, n) in enumerate(targets)
        ]
        results = await asyncio.gather(*polls)
        return [x for r in results for x in r]

    queue.put(asyncio.run(run()))


async def capacity(count: int, seconds: float) -> tuple[float, float, float, bool]:
    async with AsyncExitStack() as stack:
        sims = []
        for index in range(count):
            config = SimulationConfig(
                plants=(PLANTS[index % len(PLANTS)],),
                lab="bench",
                student=f"s{index}",
                course_secret=SECRET,
                enable_opcua=False,
            )
            sims.append(await stack.enter_async_context(Simulation(config)))
        targets = [(s.modbus_port, *_request(s, s.config.plants[0])) for s in sims]
        ticks_before = [s.elapsed_s for s in sims]
        context = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[list[float]] = context.Queue()
        process = context.Process(target=_load_process, args=(targets, seconds, queue))
        started = time.perf_counter()
        process.start()
        latencies = await asyncio.to_thread(queue.get, True, seconds + 60)
        elapsed = time.perf_counter() - started
        process.join(10)
        tick_rate = statistics.mean(
            (s.elapsed_s - t0) * s.config.tick_hz / elapsed
            for s, t0 in zip(sims, ticks_before, strict=True)
        )
    p50 = statistics.median(latencies) * 1000
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    return tick_rate, p50, p99, p99 < 20 and tick_rate > 9.5


async def main(quick: bool) -> None:
    started = time.perf_counter()
    ours, bare = await compare_with_bare(2.0 if quick else 4.0)
    carried = 0
    print("\nplants per process (each polled once a second from another process):")
    print("  plants  tick Hz (of 10)  p50 ms  p99 ms  ok")
    for count in (10, 25, 50) if quick else (10, 25, 50, 75, 100):
        if time.perf_counter() - started > 150:
            print("  (stopped: time budget)")
            break
        rate, p50, p99, ok = await capacity(count, 6.0 if quick else 10.0)
        print(f"  {count:6d}  {rate:15.2f}  {p50:6.2f}  {p99:6.2f}  {'yes' if ok else 'NO'}")
        carried = count if ok else carried
    print(f"\nbench time {time.perf_counter() - started:.0f} s")
    figures = {"modbus_reads_per_s": round(ours), "plants_per_process_p99_under_20ms": carried}
    baselines = {"bare_pymodbus_reads_per_s": round(bare), "plants_target": 50}
    print(json.dumps({"bench": "sim_capacity", "figures": figures, "baselines": baselines}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer sizes")
    asyncio.run(main(parser.parse_args().quick))
