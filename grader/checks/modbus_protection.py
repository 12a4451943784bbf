"""modbus_write_protection: the student's Modbus TCP proxy passes reads and refuses writes.

In labs with `modbus_proxy: true` the submission is a protecting proxy (a read-only
industrial firewall in front of the PLC): it listens on IIOTLAB_PROXY_PORT and talks to the
PLC at IIOTLAB_MODBUS_HOST/PORT. The probe connects to it like any SCADA client would, reads
every tag of the datasheet, attempts writes with function codes 5, 6, 15 and 16 on writable
tags (writing back the words it just read, so a write that gets through changes nothing
but is in the PLC's write log), then reads again on the same connection. Evaluation is pure
over the probe's records, the ground truth and the simulator's write log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from grader.checks.registry import CheckContext, CheckOutcome, CheckParams, check, probe
from grader.observation import ProbeRecord, TruthSeries, Value
from grader.probes.modbus_client import (
    READ_FUNCTIONS,
    ModbusLinkError,
    ModbusReply,
    RawModbusClient,
    read_pdu,
    write_coils_pdu,
    write_registers_pdu,
    write_single_pdu,
)
from iiotlab.datasheet import Datasheet, TagSpec
from iiotlab.errors import RegisterCodecError
from iiotlab.registers import RegisterFormat, bit_of, decode

if TYPE_CHECKING:
    from grader.probes.context import ProbeContext

Part = Literal["reads", "writes_refused", "plc_unchanged", "survives"]
WriteFunction = Literal[5, 6, 15, 16]
PARTS: tuple[Part, ...] = ("reads", "writes_refused", "plc_unchanged", "survives")
WRITE_PARTS = ("writes_refused", "plc_unchanged", "survives")
FUNCTION_NAMES = {
    5: "write single coil",
    6: "write single register",
    15: "write multiple coils",
    16: "write multiple registers",
}
TRUTH_SLACK_MS = 300  # the PLC serves the snapshot of its last tick; the proxy adds latency


class ModbusProtectionParams(CheckParams):
    at: float = Field(default=4.0, ge=0, description="s after start when the probe runs")
    parts: tuple[Part, ...] = Field(default=PARTS, min_length=1)
    functions: tuple[WriteFunction, ...] = Field(default=(5, 6, 15, 16), min_length=1)
    accept_codes: tuple[Annotated[int, Field(ge=1, le=255)], ...] = Field(
        default=(1, 2, 3, 4), min_length=1, description="exception codes that count as refused"
    )
    min_fraction: float = Field(default=0.9, gt=0, le=1)
    connect_within_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=3.0, gt=0)


# --- the datasheet's tags on the wire ----------------------------------------------------


def modbus_tags(sheet: Datasheet) -> list[TagSpec]:
    return [t for t in sheet.tags if t.modbus is not None]


def register_format(tag: TagSpec) -> RegisterFormat | None:
    """The tag's register format; None for coils, discrete inputs and bits of a word."""
    m = tag.modbus
    assert m is not None
    if m.table in ("coil", "discrete") or m.bit is not None:
        return None
    return RegisterFormat(m.type, m.word_order, m.scale, m.offset, m.length or 1)


def word_count(tag: TagSpec) -> int:
    fmt = register_format(tag)
    return 1 if fmt is None else fmt.count


def decode_reply(tag: TagSpec, reply: ModbusReply) -> tuple[list[int] | list[bool], Value]:
    """(raw words or bits, engineering value) of a read reply; ModbusLinkError if unusable."""
    m = tag.modbus
    assert m is not None
    if m.table in ("coil", "discrete"):
        bits = reply.bits(1)
        return bits, bits[0]
    words = reply.registers()
    if len(words) != word_count(tag):
        raise ModbusLinkError(f"asked for {word_count(tag)} registers, got {len(words)}")
    fmt = register_format(tag)
    try:
        value = bit_of(words[0], m.bit or 0) if fmt is None else decode(words, fmt)
    except RegisterCodecError as exc:
        raise ModbusLinkError(f"cannot decode {words}: {exc}") from None
    return words, value


def write_targets(
    sheet: Datasheet, raw: Mapping[str, Any]
) -> dict[int, tuple[TagSpec, bytes, list[int] | list[bool]]]:
    """Per write function: the writable tag it targets, the PDU and the values written.

    The values are the raw words (bits) the probe read before, or zeros when that read
    failed: a write that gets through lands in the PLC's write log and changes nothing.
    """
    writable = [t for t in modbus_tags(sheet) if t.access == "rw"]
    coils = [t for t in writable if t.modbus and t.modbus.table == "coil"]
    holding = [t for t in writable if t.modbus and t.modbus.table == "holding"]
    single = sorted(holding, key=lambda t: word_count(t) != 1)  # FC 6: a one-word tag first
    multi = sorted(holding, key=lambda t: word_count(t) == 1)  # FC 16: a multi-word one first
    targets: dict[int, tuple[TagSpec, bytes, list[int] | list[bool]]] = {}
    for function, candidates in ((5, coils), (15, coils), (6, single), (16, multi)):
        if not candidates:
            continue
        tag = candidates[0]
        address = tag.modbus.address if tag.modbus else 0
        if function in (5, 15):
            bits = [bool(b) for b in raw.get(tag.name) or [False]][:1]
            pdu = write_single_pdu(5, address, bits[0]) if function == 5 else None
            targets[function] = (tag, pdu or write_coils_pdu(address, bits), bits)
        else:
            words = [int(w) for w in raw.get(tag.name) or [0] * word_count(tag)]
            words = words[:1] if function == 6 else words
            pdu = write_single_pdu(6, address, words[0]) if function == 6 else None
            targets[function] = (tag, pdu or write_registers_pdu(address, words), words)
    return targets


# --- probe -------------------------------------------------------------------------------


async def _connect(ctx: ProbeContext[ModbusProtectionParams], port: int) -> RawModbusClient | None:
    """Connect to the student's proxy, retrying until connect_within_s."""
    unit, params = ctx.datasheet.modbus.unit_id, ctx.params
    deadline = ctx.now_ms() + params.connect_within_s * 1000
    while True:
        client = RawModbusClient("127.0.0.1", port, unit, timeout_s=params.timeout_s)
        try:
            await client.connect()
        except ModbusLinkError as exc:
            if ctx.now_ms() < deadline:
                await asyncio.sleep(0.2)
                continue
            ctx.record("connect", expected="a listening proxy", saw=str(exc), ok=False, port=port)
            return None
        ctx.record("connect", expected="a listening proxy", saw="connected", ok=True, port=port)
        return client


async def _read_tag(
    ctx: ProbeContext[ModbusProtectionParams], client: RawModbusClient, tag: TagSpec, phase: str
) -> list[int] | list[bool] | None:
    m = tag.modbus
    assert m is not None
    function, count = READ_FUNCTIONS[m.table], word_count(tag)
    sent = ctx.now_ms()
    raw: list[int] | list[bool] | None = None
    value: Value | None = None
    code: int | None = None
    try:
        reply = await client.request(read_pdu(function, m.address, count))
        code = reply.exception_code
        raw, value = decode_reply(tag, reply)
        saw = repr(value)
    except ModbusLinkError as exc:
        saw = str(exc)
    ctx.record(
        f"{phase}:{tag.name}",
        expected="the PLC's value",
        saw=saw,
        ok=raw is not None,
        tag=tag.name,
        function=function,
        address=m.address,
        count=count,
        value=value,
        exception_code=code,
        sent_ms=sent,
        received_ms=ctx.now_ms(),
    )
    return raw


async def _write_once(
    ctx: ProbeContext[ModbusProtectionParams],
    client: RawModbusClient,
    function: int,
    target: tuple[TagSpec, bytes, list[int] | list[bool]],
) -> None:
    tag, pdu, values = target
    sent = ctx.now_ms()
    try:
        reply = await client.request(pdu)
        code, saw = reply.exception_code, reply.describe()
    except ModbusLinkError as exc:
        code, saw = None, str(exc)
    ctx.record(
        f"write:fc{function}",
        expected="a Modbus exception",
        saw=saw,
        ok=code is not None,
        function=function,
        tag=tag.name,
        address=tag.modbus.address if tag.modbus else None,
        values=list(values),
        exception_code=code,
        applicable=True,
        sent_ms=sent,
        received_ms=ctx.now_ms(),
    )


async def _attempt_writes(
    ctx: ProbeContext[ModbusProtectionParams],
    client: RawModbusClient,
    raw: Mapping[str, Any],
) -> RawModbusClient:
    """Each write function once; reconnects when the proxy dropped the connection."""
    targets = write_targets(ctx.datasheet, raw)
    dropped: list[int] = []
    for function in ctx.params.functions:
        target = targets.get(function)
        if target is None:
            table = "coil" if function in (5, 15) else "holding register"
            saw = f"no writable {table} on the datasheet"
            ctx.record(f"write:fc{function}", expected="", saw=saw, ok=False, applicable=False)
            continue
        if not client.connected:
            client = await _connect(ctx, client.port) or client
        await _write_once(ctx, client, function, target)
        if not client.connected:
            dropped.append(function)
    kept = not dropped and client.connected
    saw = "kept open" if kept else f"closed after FC {', '.join(map(str, dropped)) or '?'}"
    ctx.record("connection", expected="kept open", saw=saw, ok=kept, dropped_after=dropped)
    if not client.connected:  # whether the proxy serves at all (the part still fails)
        client = await _connect(ctx, client.port) or client
    return client


def truth_matches(
    tag: TagSpec, saw: Value | None, truth: TruthSeries, sent_ms: int, received_ms: int
) -> tuple[bool, Value | None]:
    """(saw equals a truth value served while the read was in flight, the truth then)."""
    window = truth.values_between(tag.name, sent_ms - TRUTH_SLACK_MS, received_ms + TRUTH_SLACK_MS)
    before = truth.value_at(tag.name, sent_ms)
    candidates = [v for v in (before, *window) if v is not None]
    expected = truth.value_at(tag.name, received_ms)
    if saw is None:
        return False, expected
    return any(_equal(tag, saw, c) for c in candidates), expected


def _equal(tag: TagSpec, saw: Value, truth: Value) -> bool:
    if isinstance(saw, str) or isinstance(truth, str):
        return str(saw).rstrip("\0 ") == str(truth).rstrip("\0 ")
    if isinstance(saw, bool) or isinstance(truth, bool):
        return bool(saw) == bool(truth) and float(truth) in (0.0, 1.0)
    tolerance = (tag.tolerance or 0.0) + 1e-6 * max(1.0, abs(float(truth)))
    return abs(float(saw) - float(truth)) <= tolerance


def records_named(records: Sequence[ProbeRecord], prefix: str) -> list[ProbeRecord]:
    return [r for r in records if r.name.startswith(prefix)]


# --- evaluation --------------------------------------------------------------------------


def _read_rows(
    ctx: CheckContext[ModbusProtectionParams], records: Sequence[ProbeRecord]
) -> list[dict[str, Any]]:
    """Per read: tag, function, what the proxy answered, the truth then, ok."""
    tags = {t.name: t for t in ctx.datasheet.tags}
    rows = []
    for record in records:
        tag = tags.get(str(record.detail.get("tag")))
        if tag is None:
            continue
        value = record.detail.get("value") if record.ok else None
        ok, expected = truth_matches(
            tag,
            value,
            ctx.observation.truth,
            int(record.detail.get("sent_ms", record.ts_ms)),
            int(record.detail.get("received_ms", record.ts_ms)),
        )
        rows.append(
            {
                "tag": tag.name,
                "function": record.detail.get("function"),
                "address": record.detail.get("address"),
                "expected": expected,
                "saw": value if record.ok else record.saw,
                "answered": record.ok,
                "ok": ok,
            }
        )
    return rows


def _fraction(rows: Sequence[dict[str, Any]]) -> float:
    return sum(1 for r in rows if r["ok"]) / len(rows) if rows else 0.0


def _refused_functions(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Read functions the proxy never answered with data: a whole table cut off (e.g. no
    coil reads), which min_fraction alone would let pass when the table has few tags."""
    used = {r["function"] for r in rows if r["function"] is not None}
    answered = {r["function"] for r in rows if r["answered"]}
    return sorted(used - answered)


Parts = list[tuple[str, float, bool]]


def _reads(ctx: CheckContext[Any], records: Sequence[ProbeRecord]) -> tuple[Parts, Any, Any]:
    rows = _read_rows(ctx, records_named(records, "read:"))
    good = sum(1 for r in rows if r["ok"])
    refused = _refused_functions(rows)
    ok = bool(rows) and _fraction(rows) >= ctx.params.min_fraction and not refused
    what = f"reads pass through: {good} of {len(rows)} tags equal the PLC's values"
    if refused:
        what += f"; read function(s) {', '.join(map(str, refused))} never answered with data"
    wrong = [r for r in rows if not r["ok"]]
    expected = "every tag read through the proxy equals the PLC's value (at least "
    expected += f"{ctx.params.min_fraction:.0%} of the tags, within the datasheet tolerance), "
    expected += "and every read function (1-4) the datasheet needs is answered"
    saw = {"matching": f"{good} of {len(rows)}", "wrong": wrong[:5], "refused_functions": refused}
    return [(what, 2.0, ok)], expected, saw


def _writes_refused(
    ctx: CheckContext[Any], records: Sequence[ProbeRecord]
) -> tuple[Parts, Any, Any]:
    by_name = {r.name: r for r in records}
    codes = ctx.params.accept_codes
    parts: Parts = []
    saw: dict[str, str] = {}
    for function in ctx.params.functions:
        what = f"FC {function} ({FUNCTION_NAMES[function]})"
        record = by_name.get(f"write:fc{function}")
        if record is not None and record.detail.get("applicable") is False:
            saw[what] = f"not applicable: {record.saw}"
            continue
        code = record.detail.get("exception_code") if record is not None else None
        saw[what] = record.saw if record is not None else "not attempted"
        parts.append((f"{what} refused with an exception", 1.0, code in codes))
    expected = "each write answered with Modbus exception " + " or ".join(f"{c:02d}" for c in codes)
    return parts, expected + " (01 illegal function is the usual answer)", saw


def _plc_unchanged(
    ctx: CheckContext[Any], records: Sequence[ProbeRecord]
) -> tuple[Parts, Any, Any]:
    attempts = [r for r in records_named(records, "write:") if r.detail.get("applicable")]
    start = min((int(r.detail.get("sent_ms", r.ts_ms)) for r in attempts), default=None)
    writes = [
        w
        for w in ctx.observation.writes
        if w.protocol == "modbus" and start is not None and w.ts_ms >= start
    ]
    ok = start is not None and not writes
    what = "the PLC's write log: no write from the proxy" if attempts else "no write attempted"
    saw = {
        "writes_at_plc": len(writes),
        "first": [
            {"ts": w.ts_ms, "tag": w.tag, "value": w.value, "ok": w.ok, "source": w.source}
            for w in writes[:5]
        ],
    }
    return [(what, 2.0, ok)], "no write reaches the PLC after the first attempt", saw


def _survives(ctx: CheckContext[Any], records: Sequence[ProbeRecord]) -> tuple[Parts, Any, Any]:
    connection = next((r for r in records if r.name == "connection"), None)
    rows = _read_rows(ctx, records_named(records, "after:"))
    kept = connection is not None and connection.ok
    refused = _refused_functions(rows)
    ok = kept and bool(rows) and _fraction(rows) >= ctx.params.min_fraction and not refused
    good = sum(1 for r in rows if r["ok"])
    part = ("the proxy still serves reads on the same connection after the writes", 1.0, ok)
    saw = {
        "connection": connection.saw if connection is not None else "writes not attempted",
        "reads_after": f"{good} of {len(rows)} equal the PLC's values",
    }
    return [part], "the connection stays open and reads still pass after refused writes", saw


EVALUATORS = {
    "reads": _reads,
    "writes_refused": _writes_refused,
    "plc_unchanged": _plc_unchanged,
    "survives": _survives,
}


@check("modbus_write_protection", params=ModbusProtectionParams)
def modbus_write_protection(ctx: CheckContext[ModbusProtectionParams]) -> CheckOutcome:
    """A Modbus TCP proxy passes reads to the PLC and refuses every write function."""
    records = ctx.observation.probes_of(ctx.spec.id)
    connect = next((r for r in records if r.name == "connect"), None)
    unit = ctx.datasheet.modbus.unit_id
    port = connect.detail.get("port") if connect is not None else None
    where = f"the grader's Modbus TCP client -> your proxy 127.0.0.1:{port} (unit {unit}); "
    where += "the PLC's write log"
    if connect is None or not connect.ok:
        saw = connect.saw if connect is not None else "the grader did not probe the proxy"
        evidence = {"expected": "a Modbus TCP proxy listening", "saw": saw, "where": where}
        return CheckOutcome(0.0, ctx.spec.points, False, f"no proxy: {saw}", evidence)
    parts: Parts = []
    expected: dict[str, Any] = {}
    saw_all: dict[str, Any] = {}
    for name in PARTS:
        if name in ctx.params.parts:
            found, expected[name], saw_all[name] = EVALUATORS[name](ctx, records)
            parts += found
    return ctx.outcome(parts, {"expected": expected, "saw": saw_all, "where": where})


@probe("modbus_write_protection")
async def probe_protection(ctx: ProbeContext[ModbusProtectionParams]) -> None:
    await ctx.sleep_until(ctx.params.at)
    port = ctx.env.student_proxy_port
    if port is None:
        saw = "the lab gives the submission no proxy port (lab.yaml modbus_proxy: false)"
        ctx.record("connect", expected="a listening proxy", saw=saw, ok=False)
        return
    client = await _connect(ctx, port)
    if client is None:
        return
    try:
        tags = modbus_tags(ctx.datasheet)
        raw = {tag.name: await _read_tag(ctx, client, tag, "read") for tag in tags}
        if any(part in ctx.params.parts for part in WRITE_PARTS):
            client = await _attempt_writes(ctx, client, raw)
            for tag in tags:
                await _read_tag(ctx, client, tag, "after")
    finally:
        await client.close()
