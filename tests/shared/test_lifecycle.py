"""iiotlab.lifecycle.Service: `async with` starts, and stops even when the body raises."""

from __future__ import annotations

import pytest

from iiotlab.lifecycle import Service

pytestmark = pytest.mark.unit


class Recorder(Service):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


async def test_async_with_starts_returns_self_and_always_stops() -> None:
    part = Recorder()
    async with part as entered:
        assert entered is part and part.calls == ["start"]
    assert part.calls == ["start", "stop"]
    failing = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        async with failing:
            raise RuntimeError("boom")
    assert failing.calls == ["start", "stop"]


async def test_a_part_without_start_says_so() -> None:
    with pytest.raises(NotImplementedError):
        async with Service():
            pass
