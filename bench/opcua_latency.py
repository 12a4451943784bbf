"""OPC UA server: tick-to-client latency of data changes vs a bare Read round trip.

A Simulation of all five plants at 10 Hz (OPC UA only). One asyncua client subscribes to
every variable of every plant (publishing interval 0 = as fast as the server can) and
measures, per notification, receive time minus SourceTimestamp (= the tick's time). The
baseline, measured in the same run on the same loop, is the round trip of a single Read
(the floor of any OPC UA exchange on this machine), over None and over
Basic256Sha256/SignAndEncrypt.

Run: python bench/opcua_latency.py [--seconds 10]. Bounded to about 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from asyncua import Client
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.simulation import Simulation, SimulationConfig
from simulators.variants import PLANTS

CLIENT_URI = "urn:iiotlab:bench:opcua-client"


def now_ms() -> float:
    return time.time_ns() / 1e6


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "no samples"

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"p50 {statistics.median(ordered):6.2f} ms  p95 {at(0.95):6.2f} ms  "
        f"p99 {at(0.99):6.2f} ms  (n={len(ordered)})"
    )


class Latencies:
    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False

    def datachange_notification(self, node: object, value: object, data: object) -> None:
        stamp = data.monitored_item.Value.SourceTimestamp  # type: ignore[attr-defined]
        if self.recording and stamp is not None:
            self.samples.append(now_ms() - stamp.timestamp() * 1000)


async def read_round_trips(client: Client, node_id: str, count: int) -> list[float]:
    node = client.get_node(node_id)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await node.read_value()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def client_certificate(folder: Path) -> tuple[str, str]:
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(CLIENT_URI)]
    certificate = cert_gen.generate_self_signed_app_certificate(
        key, CLIENT_URI, {}, names, extended=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    (folder / "client.der").write_bytes(certificate.public_bytes(Encoding.DER))
    (folder / "client.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    return str(folder / "client.der"), str(folder / "client.pem")


async def run(seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="iiotlab-bench-opcua-"))
    config = SimulationConfig(plants=PLANTS, enable_modbus=False, cert_dir=folder)
    async with Simulation(config) as sim:
        node_ids = [
            tag.opcua.node_id
            for datasheet in sim.datasheets.values()
            for tag in datasheet.tags
            if tag.opcua is not None
        ]
        latencies = Latencies()
        async with Client(sim.opcua_url) as client:
            subscription = await client.create_subscription(0, latencies)
            await subscription.subscribe_data_change([client.get_node(n) for n in node_ids])
            await asyncio.sleep(1.0)
            latencies.recording = True
            await asyncio.sleep(seconds)
            latencies.recording = False
            plain = await read_round_trips(client, node_ids[0], 300)
        secure = Client(sim.opcua_url)
        secure.application_uri = CLIENT_URI
        user = next(iter(sim.datasheets.values())).opcua.users[0]
        secure.set_user(user["username"])
        secure.set_password(user["password"])
        certificate, key = client_certificate(folder)
        await secure.set_security(SecurityPolicyBasic256Sha256, certificate, key)
        async with secure:
            encrypted = await read_round_trips(secure, node_ids[0], 300)
    rate = len(latencies.samples) / seconds
    print(f"plants {len(PLANTS)}, variables {len(node_ids)}, tick 10 Hz, {seconds:.0f} s")
    print(f"data change tick->client   {percentiles(latencies.samples)}  {rate:.0f}/s")
    print(f"baseline Read, None        {percentiles(plain)}")
    print(f"baseline Read, SignAndEnc. {percentiles(encrypted)}")

    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else -1

    figures = {
        "tick_to_client_p50_ms": p(latencies.samples, 0.5),
        "tick_to_client_p95_ms": p(latencies.samples, 0.95),
    }
    baselines = {"read_round_trip_p50_ms": p(plain, 0.5), "read_round_trip_p95_ms": p(plain, 0.95)}
    print(json.dumps({"bench": "opcua_latency", "figures": figures, "baselines": baselines}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(run(min(args.seconds, 25.0)))


if __name__ == "__main__":
    main()
