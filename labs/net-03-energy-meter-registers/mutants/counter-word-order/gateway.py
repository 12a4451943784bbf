"""Solution of net-03: read the energy meter's registers, publish the engineering values and
the energy used since the gateway started, counted across the counter's rollover.

Modbus TCP is spoken by hand here (a 7-byte MBAP header, function 3 or 4): the frame is
small, and you see exactly which registers go on the wire. Everything per student (unit
id, tables, addresses, types, word orders, scales) comes from the datasheet.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time

from iiotlab.datasheet import TagSpec, load_datasheet
from iiotlab.mqtt import MqttClient
from iiotlab.registers import RegisterFormat, decode

POLL_S = 0.5
TAGS = ("voltage", "current", "power_factor", "active_power", "frequency", "energy")
FUNCTIONS = {"holding": 3, "input": 4}
MBAP = struct.Struct(">HHHB")  # transaction, protocol (0), length, unit id


class ModbusClient:
    """One TCP connection, one request at a time."""

    def __init__(self, host: str, port: int, unit: int) -> None:
        self.host, self.port, self.unit = host, port, unit
        self.transaction = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def read_registers(self, table: str, address: int, count: int) -> list[int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.transaction = (self.transaction + 1) % 65536
        pdu = struct.pack(">BHH", FUNCTIONS[table], address, count)
        self.writer.write(MBAP.pack(self.transaction, 0, len(pdu) + 1, self.unit) + pdu)
        await self.writer.drain()
        _, _, length, _ = MBAP.unpack(await self.reader.readexactly(MBAP.size))
        answer = await self.reader.readexactly(length - 1)
        if answer[0] & 0x80:
            raise OSError(f"exception {answer[1]} reading {table} {address}")
        return list(struct.unpack(f">{count}H", answer[2 : 2 + 2 * count]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


SWAPPED = {"ABCD": "CDAB", "CDAB": "ABCD", "BADC": "DCBA", "DCBA": "BADC"}


def register_format(tag: TagSpec) -> RegisterFormat:
    assert tag.modbus is not None
    m = tag.modbus
    # MISTAKE: the counter's two registers read in the other word order
    order = SWAPPED[m.word_order] if tag.name == "energy" else m.word_order
    return RegisterFormat(m.type, order, m.scale, m.offset, m.length or 1)


class EnergyCounter:
    """Energy used since the first reading, from a uint32 counter that rolls over."""

    def __init__(self, kwh_per_count: float) -> None:
        self.kwh_per_count = kwh_per_count
        self.previous: int | None = None
        self.counts = 0

    def add(self, raw: int) -> float:
        if self.previous is not None:
            self.counts += (raw - self.previous) % 2**32  # a rollover is +1 past 2**32 - 1
        self.previous = raw
        return round(self.counts * self.kwh_per_count, 6)


async def main() -> None:
    env = os.environ
    sheet = load_datasheet(env["IIOTLAB_DATASHEET"])
    tenant, device = env["IIOTLAB_TENANT"], env["IIOTLAB_DEVICE"]
    plc = ModbusClient(
        env["IIOTLAB_MODBUS_HOST"], int(env["IIOTLAB_MODBUS_PORT"]), sheet.modbus.unit_id
    )
    mqtt = MqttClient(env["IIOTLAB_MQTT_URL"], client_id=f"{tenant}-{device}")
    await mqtt.connect()
    tags = [sheet.tag(name) for name in TAGS]
    energy = sheet.tag("energy")
    assert energy.modbus is not None
    counter = EnergyCounter(energy.modbus.scale)
    seq = 0
    while True:
        ts = int(time.time() * 1000)
        metrics: dict[str, float] = {}
        try:
            for tag in tags:
                assert tag.modbus is not None
                fmt = register_format(tag)
                words = await plc.read_registers(tag.modbus.table, tag.modbus.address, fmt.count)
                metrics[tag.name] = float(decode(words, fmt))
                if tag.name == "energy":
                    raw = decode(words, RegisterFormat("uint32", fmt.word_order))
                    metrics["energy_used_kwh"] = counter.add(int(raw))
        except (OSError, asyncio.IncompleteReadError) as error:
            print(f"PLC read failed: {error}; reconnecting", flush=True)
            plc.close()
            await asyncio.sleep(1)
            continue
        seq += 1
        payload = {"v": 1, "device": device, "seq": seq, "ts": ts, "metrics": metrics}
        await mqtt.publish(f"iiot/{tenant}/{device}/telemetry", json.dumps(payload).encode())
        await asyncio.sleep(max(0.0, POLL_S - (time.time() * 1000 - ts) / 1000))


if __name__ == "__main__":
    asyncio.run(main())
