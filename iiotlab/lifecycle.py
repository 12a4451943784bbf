"""The shape of every long-lived part: `start()`, `stop()` (safe twice) and `async with`."""

from __future__ import annotations

from typing import Self


class Service:
    """A base for servers, sources and stacks: `async with x:` starts x and always stops it."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
