"""Fault injection for tests and benchmarks: throttling, outages, latency; set at start or at run time."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Faults:
    throttleRate: float = 0.0  # share of API requests answered 429 + Retry-After
    unavailableRate: float = 0.0  # share answered 503 + Retry-After
    latencyMs: int = 0  # added to every API request
    retryAfterSeconds: int = 1
    throttleNext: int = 0  # the next N API requests get 429, then normal service
    unavailableNext: int = 0  # the next N API requests get 503

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault setting {name!r}; known: {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            if name.endswith("Rate") and value > 1:
                raise ValueError(f"{name} must be within [0, 1]")
            setattr(self, name, float(value) if name.endswith("Rate") else int(value))

    def pick(self, rng: random.Random) -> int | None:
        """The status to inject for this request (429 or 503), or None."""
        if self.throttleNext > 0:
            self.throttleNext -= 1
            return 429
        if self.unavailableNext > 0:
            self.unavailableNext -= 1
            return 503
        if self.throttleRate and rng.random() < self.throttleRate:
            return 429
        if self.unavailableRate and rng.random() < self.unavailableRate:
            return 503
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
