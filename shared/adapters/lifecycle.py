"""``async with`` for every client the app owns, as the Azure SDK's own clients do."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncClosable:
    """A client whose ``close()`` releases connections; usable as ``async with Client(...) as client``."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()
