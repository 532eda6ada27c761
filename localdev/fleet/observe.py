"""What ACS saw over time: the emulator's counters sampled every second, turned into per-30-second figures.

ACS's limits are per resource and per 30 s (issue and create 1,000, revoke and delete 500), so the figures that
matter are "how many X did ACS receive in any 30 s" and "how many of those it answered 429".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    operations: dict[str, int]  # requests per operation ("issue", "create", "revoke", "delete", ...)
    statuses: dict[str, int]  # "<operation>:<status>" -> count


@dataclass
class EmulatorSampler:
    """Polls ``emulator.stats()`` every ``interval`` seconds in a thread while in a ``with`` block."""

    emulator: Any
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            stats = self.emulator.stats()
        except OSError:
            return  # a missed sample only coarsens the series
        self.samples.append(Sample(time.monotonic(), dict(stats.get("operations", {})), dict(stats.get("statuses", {}))))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="emulator-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()

    def counter(self, key: str, kind: str = "operations") -> list[tuple[float, int]]:
        """(time, cumulative count) of one operation (``kind="operations"``) or ``"<op>:<status>"`` (``kind="statuses"``)."""
        return [(s.at, (s.operations if kind == "operations" else s.statuses).get(key, 0)) for s in self.samples]

    def max_in_window(self, key: str, kind: str = "operations", window: float = WINDOW_SECONDS) -> int:
        """The most of ``key`` that happened within any ``window`` seconds (between two samples at most that far apart)."""
        series = self.counter(key, kind)
        best, start = 0, 0
        for end in range(len(series)):
            while series[end][0] - series[start][0] > window:
                start += 1
            best = max(best, series[end][1] - series[start][1])
        return best

    def per_window(self, key: str, kind: str = "operations", window: float = WINDOW_SECONDS) -> list[int]:
        """Counts of ``key`` in consecutive ``window``-second slices from the first sample."""
        series = self.counter(key, kind)
        if not series:
            return []
        counts: list[int] = []
        base = last = series[0][1]
        slice_end = series[0][0] + window
        for at, value in series:
            while at > slice_end:
                counts.append(last - base)
                base, slice_end = last, slice_end + window
            last = value
        counts.append(last - base)
        return counts
