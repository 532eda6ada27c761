"""Per-user budgets, so one misbehaving client cannot spend everyone's ACS quota.

ACS issues at most 1000 tokens, and revokes or deletes at most 500 identities, per 30 s per
resource, for all users together. Each budget is a token bucket per user, kept in the worker's
memory: O(1) per check, no storage round trip. With several instances the effective limit is
the setting times the number of instances, which is still far below one client draining the
whole resource (and a repeated revoke costs no ACS call at all: see TokenService.revoke).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from shared.domain.errors import ThrottledError

#: Forget idle users beyond this many entries (their buckets are full anyway).
MAX_TRACKED_USERS = 50_000


class PerUserRateLimiter:
    """``limit`` units per user per ``period_seconds`` (a burst of that many, refilled evenly); 0 turns it off."""

    def __init__(
        self,
        limit: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        period_seconds: float = 60.0,
        what: str = "token requests",
    ) -> None:
        self.capacity = float(limit)
        self.rate = limit / period_seconds  # tokens regained per second
        self._clock = clock
        self._what = what
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def acquire(self, key: str) -> None:
        """Spend one unit of ``key``'s budget or raise ThrottledError with Retry-After."""
        if self.capacity <= 0:
            return
        now = self._clock()
        tokens, updated = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise ThrottledError(
                f"Too many {self._what} for this user; retry later.",
                retry_after=math.ceil((1.0 - tokens) / self.rate),
                code="rate_limited",
            )
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_TRACKED_USERS:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for key, (tokens, updated) in list(self._buckets.items()):
            if tokens + (now - updated) * self.rate >= self.capacity:
                del self._buckets[key]
