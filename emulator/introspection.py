"""What the emulator saw, for tests to prove what ACS would have seen. In memory only; not ACS behaviour.

- ``CallLog``: per identity, how many calls of each operation arrived (whatever their answer) and when, so a test
  can prove "no ACS call was made for identity X".
- ``TokenLedger``: per identity, when its tokens were last invalidated and which tokens are still alive, so a test
  can prove "every token issued before T is dead" without ever seeing those tokens.
- ``PeakWindows``: per operation, the most successful calls seen in any sliding window (30 s, as ACS's limits),
  so a fleet test can prove "ACS never saw more revokes than the configured share".
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

#: how many of an identity's most recent calls per operation keep their time and status (counts stay exact)
RECENT_CALLS = 100
PEAK_WINDOW_SECONDS = 30.0


@dataclass
class OperationCalls:
    count: int = 0
    first: float | None = None
    last: float | None = None
    statuses: Counter[int] = field(default_factory=Counter)
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=RECENT_CALLS))

    def add(self, at: float, status: int) -> None:
        self.count += 1
        self.first = at if self.first is None else self.first
        self.last = at
        self.statuses[status] += 1
        self.recent.append((at, status))

    def describe(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "succeeded": sum(n for status, n in self.statuses.items() if 200 <= status < 300),
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "first": self.first,
            "last": self.last,
            "recent": [{"at": at, "status": status} for at, status in self.recent],
        }


class CallLog:
    """Every API call that named an identity (path, or the identity it created), by identity and operation."""

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, OperationCalls]] = {}

    def record(self, identity_id: str, operation: str, status: int, at: float | None = None) -> None:
        per_operation = self._calls.setdefault(identity_id, {})
        per_operation.setdefault(operation, OperationCalls()).add(time.time() if at is None else at, status)

    def describe(self, identity_id: str) -> dict[str, Any]:
        calls = self._calls.get(identity_id, {})
        return {operation: calls[operation].describe() for operation in sorted(calls)}

    def summary(self) -> dict[str, dict[str, int]]:
        return {identity: {op: calls.count for op, calls in sorted(ops.items())} for identity, ops in sorted(self._calls.items())}

    def clear(self) -> None:
        self._calls.clear()


@dataclass
class IdentityTokens:
    valid_from: float | None = None  # the last revoke or delete: every token issued before it is dead
    alive: list[tuple[float, float]] = field(default_factory=list)  # (issued, expires) since valid_from


class TokenLedger:
    """Issue times of the tokens each identity may still hold; a revoke or delete empties it."""

    def __init__(self) -> None:
        self._tokens: dict[str, IdentityTokens] = {}

    def issued(self, identity_id: str, issued_at: float, expires_at: float) -> None:
        entry = self._tokens.setdefault(identity_id, IdentityTokens())
        now = time.time()
        if len(entry.alive) >= 1024:  # keep memory bounded by dropping expired tokens now and then
            entry.alive = [(issued, expires) for issued, expires in entry.alive if expires > now]
        entry.alive.append((issued_at, expires_at))

    def invalidated(self, identity_id: str, at: float | None = None) -> None:
        entry = self._tokens.setdefault(identity_id, IdentityTokens())
        entry.valid_from = time.time() if at is None else at
        entry.alive.clear()

    def describe(self, identity_id: str, before: float | None = None) -> dict[str, Any]:
        entry = self._tokens.get(identity_id, IdentityTokens())
        now = time.time()
        alive = [issued for issued, expires in entry.alive if expires > now]
        answer: dict[str, Any] = {"validFrom": entry.valid_from, "liveTokens": len(alive)}
        if before is not None:
            answer["liveTokensIssuedBefore"] = sum(1 for issued in alive if issued < before)
        return answer

    def clear(self) -> None:
        self._tokens.clear()


class PeakWindows:
    """Per operation, the maximum number of successful calls inside any window of ``window`` seconds."""

    def __init__(self, window: float = PEAK_WINDOW_SECONDS) -> None:
        self.window = window
        self._recent: dict[str, deque[float]] = {}
        self._peaks: dict[str, tuple[int, float]] = {}  # operation -> (count, wall-clock time it was reached)
        self.since = time.time()

    def succeeded(self, operation: str, now: float | None = None, wall: float | None = None) -> None:
        """One more success; any window's maximum is reached at a window that ends on a success, so checking here suffices."""
        now = time.monotonic() if now is None else now
        recent = self._recent.setdefault(operation, deque())
        recent.append(now)
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) > self._peaks.get(operation, (0, 0.0))[0]:
            self._peaks[operation] = (len(recent), time.time() if wall is None else wall)

    def peak(self, operation: str) -> int:
        return self._peaks.get(operation, (0, 0.0))[0]

    def describe(self) -> dict[str, Any]:
        return {
            "windowSeconds": self.window,
            "since": self.since,
            "operations": {op: {"peak": count, "reachedAt": at} for op, (count, at) in sorted(self._peaks.items())},
        }

    def clear(self) -> None:
        self._recent.clear()
        self._peaks.clear()
        self.since = time.time()
