"""Interrupted runs, throttling, outages and pacing: every request done, exactly once where it can be."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from shared.domain.caller import Caller
from shared.domain.revocation.sweep import CLAIM_MARGIN_SECONDS
from shared.domain.token_service import Completion
from tests.support import REPO_ROOT
from tests.support.sweep_world import default_settings, key_of

ROOT = REPO_ROOT
pytestmark = pytest.mark.integration


async def issue_and_request(world, count: int, prefix: str) -> dict[str, str]:
    tokens = {}
    for index in range(count):
        user = f"{prefix}{index}"
        tokens[user] = (await world.issue(user)).token.token
        await world.ledger.record("revoke", key_of(user), reason="test", source="operator", now=world.clock())
    return tokens


def assert_all_revoked(world, tokens: dict[str, str]) -> None:
    verdicts = {user: world.emulator.validate(token) for user, token in tokens.items()}
    assert {user: (v["valid"], v.get("reason")) for user, v in verdicts.items()} == dict.fromkeys(tokens, (False, "revoked"))


async def test_a_run_stopped_by_its_budget_is_finished_by_the_next_exactly_once(world):
    tokens = await issue_and_request(world, 30, "dl")
    world.emulator.set_faults(latencyMs=100)
    sweeper = world.sweeper(default_settings(concurrency=2), with_queue=False)

    first = await sweeper.run_timer(budget_seconds=CLAIM_MARGIN_SECONDS + 0.5)
    assert first.stopped_by_budget and 0 < first.revoked < 30
    second = await sweeper.run_timer()

    assert first.revoked + second.revoked == 30
    assert world.successful("revoke") == 30  # each request exactly once in ACS's view
    assert await world.ledger.count_pending() == (0, False)
    assert_all_revoked(world, tokens)


async def test_a_killed_run_is_finished_by_the_next_and_nothing_is_lost(world):
    tokens = await issue_and_request(world, 40, "kill")
    world.emulator.set_faults(latencyMs=150)
    concurrency = 2
    done_before = await world.kill_timer_run(5, wait_seconds=30, REVOCATION_CONCURRENCY=str(concurrency))
    assert 5 <= done_before < 40

    world.emulator.set_faults(latencyMs=0)
    resumed = await world.sweeper(default_settings(concurrency=concurrency)).run_timer()

    assert resumed.failed == 0 and resumed.deferred == 0
    assert await world.ledger.count_pending() == (0, False)
    assert_all_revoked(world, tokens)
    # At most the calls in flight at the kill (ACS answered, the ledger had not yet heard) are repeated.
    assert 40 <= world.successful("revoke") <= 40 + concurrency


async def test_429_bursts_and_503_windows_are_survived_with_nothing_lost(world):
    tokens = await issue_and_request(world, 40, "fault")
    world.emulator.set_faults(throttleRate=0.3, unavailableRate=0.1, retryAfterSeconds=1, throttleNext=5, unavailableNext=3)
    sweeper = world.sweeper(default_settings(concurrency=4), with_queue=False)
    runs = []
    for _ in range(8):  # deferred requests wait a minute: move the clock instead of waiting
        runs.append(await sweeper.run_timer())
        if await world.ledger.count_pending() == (0, False):
            break
        world.offset[0] += timedelta(seconds=61)
    assert await world.ledger.count_pending() == (0, False)
    assert sum(run.retried for run in runs) > 0
    assert sum(run.revoked for run in runs) == 40
    statuses = world.emulator.stats()["statuses"]
    assert statuses.get("revoke:429", 0) > 0 and statuses.get("revoke:503", 0) > 0
    assert statuses["revoke:204"] == 40  # every request done once
    assert_all_revoked(world, tokens)


async def test_pacing_stays_under_the_ceiling_instead_of_hitting_429(world):
    tokens = await issue_and_request(world, 30, "pace")
    world.emulator.set_limits(revoke={"count": 50, "windowSeconds": 10})  # a scaled-down ACS ceiling: 5/s
    try:
        settings = default_settings(rate_per_30s=120, concurrency=4)  # 4/s, 80% of it
        started = time.monotonic()
        summary = await world.sweeper(settings, with_queue=False).run_timer()
        elapsed = time.monotonic() - started
    finally:
        world.emulator.set_limits(revoke={"count": 500, "windowSeconds": 30})
    assert summary.revoked == 30 and summary.retried == 0
    assert world.emulator.stats()["statuses"].get("revoke:429", 0) == 0
    assert elapsed > (30 - 4) / 4 * 0.9  # it really paced (burst of 4, then 4/s)
    assert_all_revoked(world, tokens)


async def test_a_user_revoke_acs_refuses_is_pending_and_the_sweep_finishes_it(world):
    caller = Caller("dev", "busy", frozenset())
    token = (await world.issue("busy")).token.token
    world.emulator.set_faults(throttleNext=3, retryAfterSeconds=1)  # the first try and both retries
    assert await world.tokens.revoke(caller) is Completion.PENDING
    assert world.emulator.validate(token)["valid"] is True
    assert (await world.ledger.count_pending())[0] == 1

    summary = await world.sweeper().run_timer()
    assert summary.revoked == 1
    assert world.emulator.validate(token)["reason"] == "revoked"


async def test_a_user_delete_acs_refuses_drops_the_mapping_and_the_sweep_deletes_the_identity(world):
    caller = Caller("dev", "gone", frozenset())
    token = (await world.issue("gone")).token.token
    world.emulator.set_faults(unavailableNext=3, retryAfterSeconds=1)
    assert await world.tokens.delete(caller) is Completion.PENDING
    assert await world.store.get(key_of("gone")) is None  # disconnected at once
    assert world.emulator.validate(token)["valid"] is True

    summary = await world.sweeper().run_timer()
    assert summary.deleted == 1 and world.successful("delete") == 1
    assert world.emulator.validate(token)["valid"] is False


async def test_a_user_revoke_that_succeeds_leaves_no_request_behind(world):
    caller = Caller("dev", "quick", frozenset())
    token = (await world.issue("quick")).token.token
    assert await world.tokens.revoke(caller) is Completion.DONE
    assert await world.ledger.count_pending() == (0, False)
    assert world.emulator.validate(token)["reason"] == "revoked"
    assert (await world.sweeper().run_timer()).found == 0
