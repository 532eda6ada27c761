"""A :class:`shared.domain.metrics.Metrics` that remembers every call, for unit and adapter tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricCall:
    kind: str  # add | set | record
    name: str
    value: float
    attributes: dict[str, str] = field(default_factory=dict)


class RecordingMetrics:
    """Keeps every ``add``, ``set`` and ``record`` in order (``calls``)."""

    def __init__(self) -> None:
        self.calls: list[MetricCall] = []

    def add(self, name: str, value: int = 1, attributes: Mapping[str, str] | None = None) -> None:
        self.calls.append(MetricCall("add", name, value, dict(attributes or {})))

    def set(self, name: str, value: float, attributes: Mapping[str, str] | None = None) -> None:
        self.calls.append(MetricCall("set", name, value, dict(attributes or {})))

    def record(self, name: str, value: float, attributes: Mapping[str, str] | None = None) -> None:
        self.calls.append(MetricCall("record", name, value, dict(attributes or {})))

    def named(self, name: str) -> list[MetricCall]:
        return [call for call in self.calls if call.name == name]
