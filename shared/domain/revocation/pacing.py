"""Pacing the sweep under ACS's per-resource ceiling instead of discovering it through 429s.

ACS allows 500 revocations (and 500 deletions) per 30 s per resource, shared by
every instance and by the user-facing endpoints. The sweep spends a configured
share of it (``REVOCATION_RATE_PER_30S``) through a token bucket whose burst is
small enough that no 30-second window ever sees more than the rate plus the
burst. A 429 pauses every worker of the bucket for the ``Retry-After`` ACS gave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

_ROUNDING = 1e-9


class Pacer(Protocol):
    """Something to wait on before each ACS call of one operation."""

    async def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None:
        """ACS said 429 with Retry-After: hold every caller back that long."""
        ...


class RatePacer:
    """An asyncio token bucket: ``await acquire()`` before each call to ACS."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._rate = rate_per_second
        self._burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self._burst)
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (ACS said Retry-After), and drop the saved burst."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
        self._tokens = 0.0

    def delay_needed(self) -> float:
        """Seconds until the next call may go (0 if now); does not take a token."""
        now = self._clock()
        self._refill(now)
        pause = max(0.0, self._paused_until - now)
        # A token within rounding error of whole counts as whole: otherwise a wait of 1e-16 s can
        # leave a large clock value unchanged and the waiter would spin.
        shortfall = 0.0 if self._tokens >= 1 - _ROUNDING else (1 - self._tokens) / self._rate
        return max(pause, shortfall)

    async def acquire(self) -> None:
        # One waiter at a time keeps the order fair and the arithmetic simple.
        async with self._lock:
            while True:
                wait = self.delay_needed()
                if wait <= 0:
                    self._tokens -= 1
                    return
                await self._sleep(wait)

    def _refill(self, now: float) -> None:
        if now > self._updated:
            start = max(self._updated, self._paused_until)
            if now > start:
                self._tokens = min(float(self._burst), self._tokens + (now - start) * self._rate)
            self._updated = now


class Unpaced:
    """The pacer of the user-facing path: a user's own revoke is never held back behind the sweep."""

    async def acquire(self) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None
