"""bench/latency.py: how a request's time is split, and the timing wrappers that come off again. Unit tests."""

from __future__ import annotations

import pytest

from bench.latency import Breakdown, CallTimer, RequestParts


def test_own_work_is_the_total_minus_the_slower_of_the_two_side_by_side_calls() -> None:
    assert RequestParts(total=0.055, acs=0.052, write=0.004).own == pytest.approx(0.003)
    assert RequestParts(total=0.010, acs=0.002, write=0.008).own == pytest.approx(0.002)


def test_breakdown_takes_medians_in_milliseconds() -> None:
    parts = [RequestParts(0.050 + i / 1000, 0.049, 0.003) for i in range(5)]
    result = Breakdown.of(parts)
    assert result.total == pytest.approx(52.0)
    assert result.acs == pytest.approx(49.0)
    assert result.write == pytest.approx(3.0)
    assert result.own == pytest.approx(3.0)


class Service:
    async def call(self, value: int) -> int:
        return value * 2


async def test_call_timer_records_each_call_and_unwraps() -> None:
    service = Service()
    timer = CallTimer()
    timer.wrap(service, "call", "acs")
    assert await service.call(2) == 4
    assert await service.call(3) == 6
    assert len(timer.seconds["acs"]) == 2
    assert all(seconds >= 0 for seconds in timer.seconds["acs"])
    timer.clear()
    assert timer.seconds == {}
    timer.unwrap()
    assert "call" not in vars(service)
    assert await service.call(5) == 10
    assert timer.seconds == {}


async def test_call_timer_records_failed_calls_too() -> None:
    class Failing:
        async def call(self) -> None:
            raise RuntimeError("boom")

    failing = Failing()
    timer = CallTimer()
    timer.wrap(failing, "call", "acs")
    with pytest.raises(RuntimeError, match="boom"):
        await failing.call()
    assert len(timer.seconds["acs"]) == 1
