"""ACS's per-resource rate limits (Service limits for Azure Communication Services), sliding window."""

from __future__ import annotations

import math
import time
from collections import deque

#: operation -> (requests, window seconds), as documented for the Identity API
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "create": (1000, 30.0),  # create identity, incl. create with token
    "issue": (1000, 30.0),
    "revoke": (500, 30.0),
    "delete": (500, 30.0),
    "teams": (500, 30.0),
}


class RateLimits:
    def __init__(self, limits: dict[str, tuple[int, float]] | None = None) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self._seen: dict[str, deque[float]] = {name: deque() for name in self.limits}

    def set(self, operation: str, count: int, window: float | None = None) -> None:
        old_window = self.limits.get(operation, (0, 30.0))[1]
        self.limits[operation] = (count, old_window if window is None else window)
        self._seen.setdefault(operation, deque())

    def check(self, operation: str, now: float | None = None) -> int | None:
        """None if allowed (and counted); else seconds until a slot frees up."""
        if operation not in self.limits:
            return None
        count, window = self.limits[operation]
        now = time.monotonic() if now is None else now
        seen = self._seen[operation]
        while seen and seen[0] <= now - window:
            seen.popleft()
        if len(seen) >= count:
            return max(1, math.ceil(seen[0] + window - now)) if seen else max(1, math.ceil(window))
        seen.append(now)
        return None

    def reset(self) -> None:
        for seen in self._seen.values():
            seen.clear()

    def describe(self) -> dict[str, dict[str, float]]:
        return {name: {"count": count, "windowSeconds": window} for name, (count, window) in self.limits.items()}
