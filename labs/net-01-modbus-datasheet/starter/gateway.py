"""Starter for net-01: poll the PLC per your datasheet and publish telemetry.

Run by the grader with the variables of docs/grader.md. Fill in the TODOs.
"""

import asyncio
import json
import os
import time

from iiotlab.datasheet import load_datasheet
from iiotlab.mqtt import MqttClient
from iiotlab.registers import RegisterFormat, decode


async def main() -> None:
    sheet = load_datasheet(os.environ["IIOTLAB_DATASHEET"])
    tenant, device = os.environ["IIOTLAB_TENANT"], os.environ["IIOTLAB_DEVICE"]
    client = MqttClient(os.environ["IIOTLAB_MQTT_URL"], client_id=f"{tenant}-{device}")
    await client.connect()
    seq = 0
    while True:
        metrics = {}
        for tag in sheet.tags:
            # TODO: read tag.modbus.count registers at tag.modbus.address from the right table
            # TODO: decode them: decode(registers, RegisterFormat(type, word_order, scale, offset))
            pass
        seq += 1
        payload = {"v": 1, "device": device, "seq": seq, "ts": int(time.time() * 1000),
                   "metrics": metrics}
        await client.publish(f"iiot/{tenant}/{device}/telemetry", json.dumps(payload).encode())
        await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
