"""A datasheet as a vendor's register manual: Markdown or a standalone HTML page."""

from __future__ import annotations

import html
from collections.abc import Iterable

from iiotlab.datasheet import Datasheet, TagSpec

TABLE_TITLES = {
    "coil": "Coils (function codes 01, 05, 15)",
    "discrete": "Discrete inputs (function code 02)",
    "holding": "Holding registers (function codes 03, 06, 16, 23)",
    "input": "Input registers (function code 04)",
}
COLUMNS = (
    "Address",
    "Ref.",
    "Tag",
    "Type",
    "Word order",
    "Scale",
    "Offset",
    "Unit",
    "Range",
    "Access",
    "Description",
)
NOTES = (
    "Addresses are 0-based protocol addresses (PDU). Tools using 1-based references "
    "(e.g. mbpoll without -0, some HMIs) add 1; the 'Ref.' column gives the classic "
    "reference (0xxxx coils, 1xxxx discrete inputs, 3xxxx input registers, "
    "4xxxx holding registers).",
    "Engineering value = raw x scale + offset.",
    "Word order names the byte layout of a 32-bit value whose big-endian bytes are A B C D: "
    "ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA little-endian. 64-bit "
    "values extend the same rule to four registers. 16-bit values are big-endian.",
    "Strings hold two ASCII characters per register, high byte first, padded with NUL.",
    "bits16 rows are bits of one status word (bit 0 = least significant).",
    "Function codes supported: 01, 02, 03, 04, 05, 06, 15, 16, 23 and 43 / MEI 14; any "
    "other function code (diagnostics 08, 11, 12, 17, file records, 22, 24...) answers "
    "exception 01 (illegal function).",
    "Reading or writing an address not listed in a table answers exception 02 "
    "(illegal data address), also for gaps between listed addresses. A write to a "
    "read-only tag or of a value outside its range answers exception 03; a command the "
    "equipment refuses (interlock) answers exception 04; a unit id not served answers 0B.",
)
_PREFIX = {"coil": 0, "discrete": 100000, "input": 300000, "holding": 400000}
IDENTIFICATION_TITLE = "Device identification (function code 43 / MEI type 14)"
IDENTIFICATION_COLUMNS = ("Object id", "Object", "Access", "Value")
IDENTIFICATION_NOTE = (
    "Conformity level 0x82: basic (read code 01) and regular (read code 02) stream access "
    "and individual access (read code 04)."
)


def _type(tag: TagSpec) -> str:
    assert tag.modbus is not None
    if tag.modbus.bit is not None:
        return f"bits16 bit {tag.modbus.bit}"
    if tag.modbus.type == "string":
        return f"string[{(tag.modbus.length or 1) * 2}]"
    return tag.modbus.type


def _row(tag: TagSpec) -> tuple[str, ...]:
    modbus = tag.modbus
    assert modbus is not None
    wide = modbus.type in ("int32", "uint32", "float32", "float64")
    low_high = f"{tag.range[0]:g} .. {tag.range[1]:g}" if tag.range else ""
    return (
        str(modbus.address),
        f"{_PREFIX[modbus.table] + modbus.address + 1:06d}",
        tag.name,
        _type(tag),
        modbus.word_order if wide else "-",
        f"{modbus.scale:g}",
        f"{modbus.offset:g}",
        tag.unit,
        low_high,
        "R/W" if tag.access == "rw" else "R",
        tag.description,
    )


def _tables(datasheet: Datasheet) -> Iterable[tuple[str, list[tuple[str, ...]]]]:
    for table, title in TABLE_TITLES.items():
        tags = [t for t in datasheet.tags if t.modbus is not None and t.modbus.table == table]
        tags.sort(
            key=lambda t: (
                t.modbus.address if t.modbus else 0,
                t.modbus.bit or 0 if t.modbus else 0,
            )
        )
        if tags:
            yield title, [_row(t) for t in tags]


def _identification_rows(datasheet: Datasheet) -> list[tuple[str, str, str, str]]:
    identity = datasheet.identity
    if identity is None:
        return []
    objects = (
        ("0x00", "VendorName", "basic", identity.vendor_name),
        ("0x01", "ProductCode", "basic", identity.product_code),
        ("0x02", "MajorMinorRevision", "basic", identity.revision),
        ("0x03", "VendorUrl", "regular", identity.vendor_url),
        ("0x04", "ProductName", "regular", identity.product_name),
        ("0x05", "ModelName", "regular", identity.model_name),
    )
    return [(oid, name, access, value) for oid, name, access, value in objects if value]


def _header_facts(datasheet: Datasheet) -> list[tuple[str, str]]:
    extra = datasheet.model_extra or {}
    endpoint = (
        f"{datasheet.modbus.host}:{datasheet.modbus.port}"
        if datasheet.modbus.port
        else "given when the simulator starts"
    )
    identity = datasheet.identity
    maker = (
        []
        if identity is None
        else [
            ("Manufacturer", f"{identity.vendor_name} ({identity.vendor_url or 'no site'})"),
            ("Product", identity.product_name or ""),
            ("Order code", identity.product_code),
            ("Firmware revision", identity.revision),
        ]
    )
    return [
        *maker,
        ("Plant", datasheet.plant),
        ("Model", str(extra.get("model", ""))),
        ("Device name", datasheet.device or ""),
        ("Lab / student", f"{datasheet.lab} / {datasheet.student}"),
        ("Modbus TCP endpoint", endpoint),
        ("Modbus unit id", str(datasheet.modbus.unit_id)),
        ("OPC UA endpoint", datasheet.opcua.endpoint or "given when the simulator starts"),
        ("OPC UA namespace", f"{datasheet.opcua.namespace_uri} (ns=2)"),
        ("OPC UA object", datasheet.opcua.object_node_id or ""),
        ("OPC UA security", ", ".join(datasheet.opcua.security)),
        (
            "OPC UA users",
            ", ".join(f"{u['username']} / {u['password']}" for u in datasheet.opcua.users),
        ),
    ]


def _title(datasheet: Datasheet) -> str:
    product = datasheet.identity.product_name if datasheet.identity else None
    plant = datasheet.plant.capitalize()
    name = f"{product} ({plant.lower()})" if product else plant
    return f"{name} — Modbus TCP / OPC UA register manual"


def render_markdown(datasheet: Datasheet) -> str:
    lines = [f"# {_title(datasheet)}", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in _header_facts(datasheet)]
    for title, rows in _tables(datasheet):
        lines += [
            "",
            f"## {title}",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
        ]
    identification = _identification_rows(datasheet)
    if identification:
        lines += ["", f"## {IDENTIFICATION_TITLE}", ""]
        lines += ["| " + " | ".join(IDENTIFICATION_COLUMNS) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in identification]
        lines += ["", IDENTIFICATION_NOTE]
    lines += ["", "## OPC UA nodes", "", "| Tag | Node id | Access |", "|---|---|---|"]
    for tag in datasheet.tags:
        if tag.opcua is not None:
            lines.append(f"| {tag.name} | `{tag.opcua.node_id}` | {tag.access.upper()} |")
    lines += ["", "Methods on the plant object: Start, Stop, ResetFault.", "", "## Notes", ""]
    lines += [f"- {note}" for note in NOTES]
    return "\n".join(lines) + "\n"


def _html_table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    out = ["<table><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:75em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #999;padding:.25em .5em;text-align:left}"
    "th{background:#e8eef4}h1{border-bottom:3px solid #2a5d8f}"
)


def render_html(datasheet: Datasheet) -> str:
    title = _title(datasheet)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _html_table(("", ""), _header_facts(datasheet)),
    ]
    for table_title, rows in _tables(datasheet):
        parts += [f"<h2>{html.escape(table_title)}</h2>", _html_table(COLUMNS, rows)]
    identification = _identification_rows(datasheet)
    if identification:
        parts += [
            f"<h2>{html.escape(IDENTIFICATION_TITLE)}</h2>",
            _html_table(IDENTIFICATION_COLUMNS, identification),
            f"<p>{html.escape(IDENTIFICATION_NOTE)}</p>",
        ]
    nodes = [(t.name, t.opcua.node_id, t.access.upper()) for t in datasheet.tags if t.opcua]
    parts += [
        "<h2>OPC UA nodes</h2>",
        _html_table(("Tag", "Node id", "Access"), nodes),
        "<p>Methods on the plant object: Start, Stop, ResetFault.</p>",
        "<h2>Notes</h2><ul>",
    ]
    parts += [f"<li>{html.escape(note)}</li>" for note in NOTES]
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"
