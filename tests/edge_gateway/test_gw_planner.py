"""Coalescing read planner: few requests, protocol limits, no bridging of unmapped gaps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_gateway.planner import ReadItem, plan_reads

pytestmark = pytest.mark.unit


def item(name: str, address: int, count: int = 1, table: str = "holding") -> ReadItem:
    return ReadItem(name, table, address, count)


def test_adjacent_tags_share_one_read() -> None:
    blocks = plan_reads([item("a", 10, 2), item("b", 12, 2), item("c", 14, 1)])
    assert [(b.address, b.count) for b in blocks] == [(10, 5)]
    assert [i.name for i in blocks[0].items] == ["a", "b", "c"]


def test_gap_is_not_bridged_by_default_but_can_be() -> None:
    items = [item("a", 0, 2), item("b", 3, 2)]
    assert [(b.address, b.count) for b in plan_reads(items)] == [(0, 2), (3, 2)]
    assert [(b.address, b.count) for b in plan_reads(items, max_gap=1)] == [(0, 5)]


def test_register_limit_splits_reads() -> None:
    items = [item(f"t{i}", i * 2, 2) for i in range(100)]  # 200 registers, contiguous
    blocks = plan_reads(items)
    assert [(b.address, b.count) for b in blocks] == [(0, 124), (124, 76)]


def test_tables_are_planned_separately_and_bits_allow_2000() -> None:
    items = [item(f"c{i}", i, table="coil") for i in range(2500)] + [item("h", 0)]
    blocks = plan_reads(items)
    assert [(b.table, b.address, b.count) for b in blocks] == [
        ("coil", 0, 2000),
        ("coil", 2000, 500),
        ("holding", 0, 1),
    ]


def test_overlapping_tags_share_registers() -> None:
    # Two bits of one status word, and a float over the same registers as two halves.
    blocks = plan_reads([item("bit3", 5), item("bit7", 5), item("f", 6, 2)])
    assert [(b.address, b.count) for b in blocks] == [(5, 3)]


def test_a_tag_longer_than_one_read_is_refused() -> None:
    with pytest.raises(ValueError, match="over the 125"):
        plan_reads([item("s", 0, 126)])


items_strategy = st.lists(
    st.builds(
        ReadItem,
        name=st.text("abcdefgh", min_size=1, max_size=3),
        table=st.sampled_from(["holding", "input", "coil"]),
        address=st.integers(0, 400),
        count=st.integers(1, 4),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(items_strategy, st.integers(0, 5), st.integers(8, 125))
def test_plan_covers_every_tag_within_limits(
    items: list[ReadItem], max_gap: int, max_registers: int
) -> None:
    blocks = plan_reads(items, max_gap=max_gap, max_registers=max_registers, max_bits=50)
    planned = sorted((i.name, i.table, i.address, i.count) for b in blocks for i in b.items)
    assert planned == sorted((i.name, i.table, i.address, i.count) for i in items)
    for block in blocks:
        assert block.count <= (50 if block.table == "coil" else max_registers)
        covered: set[int] = set()
        for member in block.items:
            assert member.table == block.table
            assert block.address <= member.address and member.address + member.count <= block.end
            covered.update(range(member.address, member.address + member.count))
        # every unmapped run inside a block is at most max_gap long
        run = 0
        for address in range(block.address, block.end):
            run = 0 if address in covered else run + 1
            assert run <= max_gap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 3)), max_size=25), st.integers(0, 3))
def test_plan_is_minimal(spans: list[tuple[int, int]], max_gap: int) -> None:
    """Greedy equals the optimum from a brute-force dynamic programme."""
    limit = 10
    items = [item(f"t{i}", address, count) for i, (address, count) in enumerate(spans)]
    blocks = plan_reads(items, max_gap=max_gap, max_registers=limit)
    ordered = sorted(items, key=lambda i: (i.address, i.count))

    def feasible(group: list[ReadItem]) -> bool:
        start = group[0].address
        end = start
        for member in group:
            if member.address - end > max_gap:
                return False
            end = max(end, member.address + member.count)
        return end - start <= limit

    best = [0] + [len(ordered) + 1] * len(ordered)
    for j in range(1, len(ordered) + 1):
        for i in range(j):
            if feasible(ordered[i:j]):
                best[j] = min(best[j], best[i] + 1)
    assert len(blocks) == best[len(ordered)]
