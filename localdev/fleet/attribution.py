"""Which revokes and deletes ACS received were the app's paced work, and how many of those fell in any 30 seconds.

``REVOCATION_RATE_PER_30S`` bounds what the sweep, queue batches and campaigns send to ACS across the fleet; a
user's own sign-out (``POST /api/token/revoke``) or erasure (``DELETE /api/identity``) calls ACS at once, outside
that budget. The emulator's per-identity introspection (``GET /_emulator/identities/{id}``) keeps every call's
time and status, so each call can be told apart by who could have made it:

- **user**: the call reached the identity while its owner's own revoke or delete request was open (between the
  moment the client sent it and the moment it got the answer, a little slack either side). The user path calls
  ACS inside the request; if ACS throttles, the user gets 202 and the sweep makes the call later, outside.
- **paced**: every other call: the sweep's, a queue batch's or a campaign's.

A user's request left open while the sweep happens to revoke the same identity counts as the user's: the paced
figure can only be underestimated by calls that coincide with that identity's own sign-out, which the report
shows as the ``user`` count beside it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from localdev.fleet.load import Answer, Recorder

WINDOW_SECONDS = 30.0
#: clock slack around a user's request (one machine, one wall clock: only the order of events within a few ms)
SLACK_SECONDS = 0.05
PACED, USER = "paced", "user"


class Introspection(Protocol):
    """What this module needs of :class:`localdev.emulator_process.EmulatorProcess`."""

    def identities(self) -> dict[str, dict[str, int]]: ...

    def identity(self, identity_id: str, *, before: float | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AcsCall:
    """One call ACS received for one identity."""

    identity: str
    operation: str  # "revoke" or "delete"
    at: float  # time.time() when the emulator answered
    status: int
    source: str = PACED

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class CallLog:
    """Every revoke/delete call the emulator kept, and how many it counted but no longer keeps (over 100 per identity)."""

    calls: list[AcsCall]
    dropped: int


def read_calls(emulator: Introspection, operations: Sequence[str] = ("revoke", "delete"), workers: int = 8) -> CallLog:
    """The emulator's call log of ``operations``, for every identity that received one (since its last reset)."""
    wanted = [identity for identity, counts in emulator.identities().items() if any(counts.get(op) for op in operations)]

    def one(identity: str) -> tuple[list[AcsCall], int]:
        described = emulator.identity(identity)["calls"]
        found: list[AcsCall] = []
        dropped = 0
        for operation in operations:
            log = described.get(operation)
            if not log:
                continue
            recent = log["recent"]
            dropped += int(log["count"]) - len(recent)
            found += [AcsCall(identity, operation, float(call["at"]), int(call["status"])) for call in recent]
        return found, dropped

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, wanted))
    calls = sorted((call for found, _ in results for call in found), key=lambda call: call.at)
    return CallLog(calls, sum(dropped for _, dropped in results))


def owners(answers: Iterable[Answer]) -> dict[str, str]:
    """ACS id -> the user whose token answers named it."""
    return {answer.identity: answer.user for answer in answers if answer.identity}


def user_windows(recorder: Recorder, operations: Sequence[str] = ("revoke", "delete")) -> dict[str, list[tuple[float, float]]]:
    """user -> (start, end) wall-clock spans of that user's own revoke/delete requests, sorted by start."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for answer in recorder.answers:
        if answer.op in operations:
            start = recorder.wall(answer.sent) - SLACK_SECONDS
            spans.setdefault(answer.user, []).append((start, start + answer.latency + 2 * SLACK_SECONDS))
    return {user: sorted(found) for user, found in spans.items()}


def attribute(
    calls: Iterable[AcsCall], owner: Mapping[str, str], windows: Mapping[str, list[tuple[float, float]]]
) -> list[AcsCall]:
    """Each call marked ``user`` when it fell inside its identity's owner's own revoke/delete request, else ``paced``."""
    marked = []
    for call in calls:
        spans = windows.get(owner.get(call.identity, ""), [])
        inside = any(start <= call.at <= end for start, end in spans)
        marked.append(AcsCall(call.identity, call.operation, call.at, call.status, USER if inside else PACED))
    return marked


def max_in_window(times: Sequence[float], window: float = WINDOW_SECONDS) -> tuple[int, float]:
    """The most of ``times`` in any half-open window ``[t, t + window)``, and where that window starts.

    The busiest window can always be slid to start at one of the times, so only those starts are tried.
    """
    ordered = sorted(times)
    best, best_start = 0, ordered[0] if ordered else 0.0
    for index, start in enumerate(ordered):
        inside = bisect.bisect_left(ordered, start + window) - index
        if inside > best:
            best, best_start = inside, start
    return best, best_start


def per_slice(times: Sequence[float], start: float, window: float = WINDOW_SECONDS) -> list[int]:
    """Counts of ``times`` in consecutive ``window``-second slices from ``start`` (to the last time)."""
    if not times:
        return []
    counts = [0] * (int((max(times) - start) // window) + 1)
    for at in times:
        if at >= start:
            counts[int((at - start) // window)] += 1
    return counts


@dataclass(frozen=True)
class PacedFigures:
    """What the budget check reports for one operation."""

    operation: str
    paced_calls: int
    paced_succeeded: int
    user_calls: int
    max_paced_in_30s: int
    busiest_window_start: float
    slices: list[int]


def paced_figures(calls: Sequence[AcsCall], operation: str, start: float) -> PacedFigures:
    """The paced calls of ``operation``: counts, the most in any sliding 30 s, and per consecutive 30 s from ``start``."""
    mine = [call for call in calls if call.operation == operation]
    paced = [call.at for call in mine if call.source == PACED]
    most, at = max_in_window(paced)
    return PacedFigures(
        operation,
        len(paced),
        sum(1 for call in mine if call.source == PACED and call.succeeded),
        sum(1 for call in mine if call.source == USER),
        most,
        at,
        per_slice(paced, start),
    )
