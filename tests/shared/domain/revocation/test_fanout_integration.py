"""A backlog bigger than one run: fanned out as paced queue batches on Azurite's queue service."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from datetime import timedelta

import pytest

from shared.domain.revocation.sweep import CHECKPOINT, CLAIM_MARGIN_SECONDS, LAST_BATCH
from shared.domain.revocation.work import encode_batch
from tests.support.sweep_world import default_settings, key_of

pytestmark = pytest.mark.integration


async def drain_until(world, runner, done, timeout: float = 60.0) -> None:
    """Run the queue trigger (as the host would) until ``done()`` or the timeout."""
    deadline = time.monotonic() + timeout
    while not await done():
        assert time.monotonic() < deadline, "the queue batches did not finish in time"
        if not await runner.run_once():
            await asyncio.sleep(0.1)


async def test_a_backlog_is_fanned_out_in_paced_batches_and_finished_by_the_queue_trigger(world):
    tokens = {}
    for index in range(120):
        user = f"fan{index}"
        tokens[user] = (await world.issue(user)).token.token
        await world.ledger.record("revoke", key_of(user), reason="test", source="operator", now=world.clock())
    settings = default_settings(batch_size=25, concurrency=4)  # 100/s: one batch every 0.25 s
    sweeper = world.sweeper(settings)

    summary = await sweeper.run_timer(budget_seconds=CLAIM_MARGIN_SECONDS + 0.1)

    assert summary.stopped_by_budget and summary.fanned_out > 0
    assert summary.revoked + summary.fanned_out == 120
    assert summary.batches == math.ceil(summary.fanned_out / 25)
    checkpoint = await world.ledger.load_status(CHECKPOINT)
    assert checkpoint["batches"] == summary.batches
    # Leased: a timer run now leaves the fanned-out requests to their batches.
    assert (await world.sweeper(settings).run_timer()).found == 0

    runner = world.queue_runner(sweeper)
    try:
        await drain_until(world, runner, lambda: _no_pending(world))
    finally:
        await runner.close()
    assert runner.stats.processed == summary.batches and runner.stats.failed == 0
    assert world.successful("revoke") == 120  # each exactly once
    assert all(world.emulator.validate(token)["reason"] == "revoked" for token in tokens.values())
    last_batch = await world.ledger.load_status(LAST_BATCH)
    assert last_batch["trigger"] == "queue" and last_batch["failed"] == 0


async def _no_pending(world) -> bool:
    return await world.ledger.count_pending() == (0, False)


async def test_policy_work_fanned_out_is_not_planned_twice_while_the_queue_owns_it(world):
    grants = [await world.issue(f"pol{index}") for index in range(60)]
    world.offset[0] = timedelta(hours=3)
    settings = default_settings(batch_size=20, max_session_hours=2)
    sweeper = world.sweeper(settings)

    first = await sweeper.run_timer(budget_seconds=CLAIM_MARGIN_SECONDS + 0.05)
    assert first.fanned_out > 0
    second = await sweeper.run_timer()  # within the checkpointed window: no policy planning
    assert second.found == 0

    runner = world.queue_runner(sweeper)

    async def all_revoked() -> bool:
        return world.successful("revoke") >= 60

    try:
        await drain_until(world, runner, all_revoked)
        await runner.drain(idle_polls=3)
    finally:
        await runner.close()
    assert world.successful("revoke") == 60
    assert all(world.emulator.validate(grant.token.token)["reason"] == "revoked" for grant in grants)
    world.offset[0] += timedelta(hours=1)  # after the checkpoint window, planning resumes: nothing due
    assert (await sweeper.run_timer()).found == 0


async def test_a_malformed_batch_is_retried_then_poisoned_and_reported(world):
    sweeper = world.sweeper()
    await world.fanout.send(encode_batch([]), delay_seconds=0)  # creates the queue
    runner = world.queue_runner(sweeper)
    try:
        await runner.run_once()  # the empty (valid) batch
        raw = world.fanout._queue
        await raw.send_message(base64.b64encode(b'{"v": 99}').decode())
        stats = await runner.drain(idle_polls=2)
    finally:
        await runner.close()
    assert stats.failed == 5 and stats.poisoned == 1
    assert await world.fanout.poison_count() == 1
    assert (await sweeper.run_timer()).poison_messages == 1
