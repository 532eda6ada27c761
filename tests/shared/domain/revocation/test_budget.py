"""The fleet-wide ACS budget (issue 13, item 1): any number of instances together stay under the setting."""

from __future__ import annotations

import random

import pytest

from shared.domain.errors import ThrottledError
from shared.domain.revocation.budget import WINDOW_SECONDS, FleetBudget
from tests.support.fakes import FakeBudgetStore

RATE = 400  # REVOCATION_RATE_PER_30S


class Wall:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def greedy(instances: list[FleetBudget], wall: Wall, seconds: float, step: float = 0.05) -> list[float]:
    """Every instance takes every call it may, every ``step`` seconds: the worst case for the budget."""
    calls: list[float] = []
    end = wall.now + seconds
    while wall.now < end:
        for instance in instances:
            while True:
                try:
                    await instance.try_acquire()
                except ThrottledError:
                    break
                calls.append(wall.now)
        wall.now += step
    return calls


def busiest_30s(calls: list[float]) -> int:
    """The most calls in any sliding 30-second window (as ACS and the emulator count)."""
    calls = sorted(calls)
    start, best = 0, 0
    for end, moment in enumerate(calls):
        while calls[start] <= moment - 30:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("instances", [1, 3, 10])
async def test_any_number_of_instances_stays_under_the_setting_in_every_sliding_window(instances):
    store, wall = FakeBudgetStore(), Wall()
    fleet = [FleetBudget(store, "revoke", RATE, wall=wall, rng=random.Random(n)) for n in range(instances)]
    calls = await greedy(fleet, wall, seconds=120)
    assert busiest_30s(calls) <= RATE
    assert len(calls) / 4 >= 0.9 * RATE  # and it still spends over 90 % of the setting per 30 s


async def test_one_storage_round_trip_per_slice_not_per_call():
    store, wall = FakeBudgetStore(), Wall()
    budget = FleetBudget(store, "revoke", RATE, wall=wall)
    calls = await greedy([budget], wall, seconds=30)
    successful_claims = len(store.claimed)
    assert successful_claims * budget.slice == len(calls)
    assert store.claims <= successful_claims + 30 / WINDOW_SECONDS * 2  # plus at most a failed try or two per window


async def test_a_spent_window_answers_at_once_with_the_time_to_the_next():
    store, wall = FakeBudgetStore(), Wall()
    budget = FleetBudget(store, "issue", 32, wall=wall)  # 2 calls per window
    await budget.try_acquire()
    await budget.try_acquire()
    with pytest.raises(ThrottledError) as caught:
        await budget.try_acquire()
    assert 1 <= caught.value.retry_after <= WINDOW_SECONDS


async def test_a_429_from_acs_pauses_the_budget_for_its_retry_after():
    store, wall = FakeBudgetStore(), Wall()
    budget = FleetBudget(store, "revoke", RATE, wall=wall)
    budget.pause(10)
    with pytest.raises(ThrottledError):
        await budget.try_acquire()
    wall.now += 10.5
    await budget.try_acquire()


async def test_old_slots_are_pruned():
    store, wall = FakeBudgetStore(), Wall()
    budget = FleetBudget(store, "revoke", RATE, wall=wall)
    await greedy([budget], wall, seconds=20)
    wall.now += 400
    claimed = len(store.claimed)
    assert claimed > 0 and await budget.prune() == claimed and store.claimed == set()
