"""One ACS budget for the whole fleet: every instance draws its calls from shared slices.

ACS's limits are per resource (500 revocations per 30 s, ...) and its window slides. Pacing per
instance cannot hold a fleet under them: three instances running queue batches at once spend three
times the setting. So time is cut into short windows (``WINDOW_SECONDS``, by the wall clock every
instance shares) and each window's budget into a few slots; an instance that needs calls claims a
slot with one create-if-absent write to Table storage (the optimistic concurrency: a slot someone
else holds makes the write fail), then spends that slot's calls locally. At most one storage round
trip per slice, never per call.

Any sliding 30-second window meets at most 30 / WINDOW_SECONDS + 1 windows, so a window's budget is
the setting divided by that: the fleet never makes more calls in any 30 seconds than the setting,
and at a steady pace uses (30 / WINDOW_SECONDS) / (30 / WINDOW_SECONDS + 1) of it (94%).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from shared.domain.errors import ThrottledError

#: the length of one budget window (seconds of wall-clock time)
WINDOW_SECONDS = 2.0
#: how many windows any sliding 30-second window touches at most
WINDOWS_PER_30S = math.ceil(30 / WINDOW_SECONDS) + 1
#: slots per window an instance may claim (more slots: finer sharing between instances, more writes)
SLOTS_PER_WINDOW = 5


class BudgetStore(Protocol):
    """Where the fleet's slices are claimed: one create-if-absent row per (operation, window, slot)."""

    async def claim(self, operation: str, window: int, slot: int) -> bool:
        """Take a slot; False when another instance holds it."""
        ...

    async def prune(self, operation: str, before_window: int) -> int:
        """Forget the slots of windows before ``before_window`` (housekeeping); how many went."""
        ...


class FleetBudget:
    """The calls of one ACS operation the fleet may make, shared through a :class:`BudgetStore`."""

    def __init__(
        self,
        store: BudgetStore,
        operation: str,
        rate_per_30s: int,
        *,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self.operation = operation
        #: calls per window for the whole fleet
        self.per_window = max(1, rate_per_30s // WINDOWS_PER_30S)
        self.slots = min(SLOTS_PER_WINDOW, self.per_window)
        self.slice = self.per_window // self.slots
        self._wall = wall
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - spreads instances over slots; nothing secret
        self._window = -1
        self._left = 0
        self._tried = 0
        self._first_slot = 0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def window_now(self) -> int:
        return int(self._wall() // WINDOW_SECONDS)

    async def acquire(self) -> None:
        """Wait until this instance may make one more call (claiming a slice when it has none)."""
        async with self._lock:
            while not await self._take():
                await self._sleep(self._wait_seconds())

    async def try_acquire(self) -> None:
        """One call now, or ThrottledError with the seconds until the next window (for callers who must not wait)."""
        async with self._lock:
            if not await self._take():
                wait = self._wait_seconds()
                raise ThrottledError(
                    "This service's share of ACS is spent for the moment; retry shortly.", retry_after=math.ceil(wait)
                )

    def pause(self, seconds: float) -> None:
        """ACS answered 429 anyway (another client of the resource): hold back for its Retry-After."""
        self._paused_until = max(self._paused_until, self._wall() + max(0.0, seconds))
        self._left = 0

    async def _take(self) -> bool:
        if self._wall() < self._paused_until:
            return False
        window = self.window_now()
        if window != self._window:
            self._window, self._left, self._tried = window, 0, 0
            self._first_slot = self._rng.randrange(self.slots)  # instances start at different slots: fewer clashes
        if self._left > 0:
            self._left -= 1
            return True
        while self._tried < self.slots:
            slot = (self._first_slot + self._tried) % self.slots
            self._tried += 1
            if await self._store.claim(self.operation, window, slot):
                self._left = self.slice - 1
                return True
        return False

    def _wait_seconds(self) -> float:
        now = self._wall()
        next_window = (math.floor(now / WINDOW_SECONDS) + 1) * WINDOW_SECONDS
        return max(0.01, self._paused_until - now, next_window - now)

    async def prune(self, keep_windows: int = 150) -> int:
        """Forget slots older than ``keep_windows`` windows (5 minutes at the default)."""
        return await self._store.prune(self.operation, self.window_now() - keep_windows)


class PacedBudget:
    """This instance's smooth pace (a token bucket) under the fleet's hard budget: both must allow a call."""

    def __init__(self, local: _Pacer, fleet: FleetBudget) -> None:
        self._local = local
        self._fleet = fleet

    async def acquire(self) -> None:
        await self._local.acquire()
        await self._fleet.acquire()

    def pause(self, seconds: float) -> None:
        self._local.pause(seconds)
        self._fleet.pause(seconds)


class _Pacer(Protocol):
    async def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None: ...
