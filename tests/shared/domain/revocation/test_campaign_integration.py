"""Incident campaigns against Azurite and the emulator: exactly the live identities, resumable, cancellable.

The emulator's introspection (per identity: calls received; tokens issued before a moment still
alive) is the judge: every token issued before T is dead, and no identity that holds only expired
tokens received a call.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from shared.domain.caller import Caller
from shared.domain.revocation.campaigns import Campaigns
from tests.support.sweep_world import default_settings

pytestmark = pytest.mark.integration

#: 2,000 identities; the live ones fit inside ACS's real 500 revocations per 30 s (the emulator enforces it)
LIVE, EXPIRED_ONLY = 300, 1700


async def seed(world, live: int, expired_only: int, prefix: str) -> tuple[list[str], list[str]]:
    """``live`` users with a token issued now; ``expired_only`` users whose last token is 30 hours old."""
    semaphore = asyncio.Semaphore(16)

    async def one_live(n: int) -> str:
        async with semaphore:
            return (await world.issue(f"{prefix}live{n}")).communication_user_id

    async def one_expired(n: int) -> str:
        async with semaphore:
            identity = await world.user_acs.create_identity()  # no token: nothing could still be alive
            await world.store.insert(Caller("dev", f"{prefix}old{n}").key, identity, world.clock() - timedelta(hours=30))
            return identity

    live_ids = await asyncio.gather(*(one_live(n) for n in range(live)))
    expired_ids = await asyncio.gather(*(one_expired(n) for n in range(expired_only)))
    return list(live_ids), list(expired_ids)


def campaigns(world) -> Campaigns:
    return Campaigns(world.ledger, world.clock, rate_per_second=100)


async def test_a_campaign_over_2000_identities_revokes_exactly_the_live_ones(world):
    live, expired = await seed(world, LIVE, EXPIRED_ONLY, "c2k-")
    world.emulator.reset()  # count only what the campaign does
    t = time.time()
    started = await campaigns(world).start("signing key leaked")
    summary = await world.sweeper(default_settings(concurrency=8)).run_timer()
    assert summary.revoked == LIVE and summary.failed == 0

    calls = world.emulator.identities()
    assert set(calls) == set(live)  # not one call for an expired-only identity ...
    assert all(world.emulator.calls(identity) == {} for identity in expired[::100])  # ... as each one confirms
    assert all(counts == {"revoke": 1} for counts in calls.values())
    for identity in live[::50]:  # every token issued before T is dead (sampled: 12 introspections)
        assert world.emulator.identity(identity, before=t)["liveTokensIssuedBefore"] == 0
    done = await campaigns(world).get(started["id"])
    assert done is not None
    assert (done["status"], done["candidates"], done["revoked"], done["remaining"]) == ("done", LIVE, LIVE, 0)
    assert world.emulator.peak("revoke") <= 500  # ACS's per-resource ceiling was never exceeded (no 429 either)


async def test_a_run_killed_mid_campaign_is_finished_by_the_next(world):
    live, _ = await seed(world, 200, 100, "kill-")
    world.emulator.reset()
    await campaigns(world).start("incident")
    world.emulator.set_faults(latencyMs=100)
    killed_at = await world.kill_timer_run(10, REVOCATION_CONCURRENCY="2", USER_REF_KEY="k" * 40)
    assert 10 <= killed_at < 200
    world.emulator.set_faults(latencyMs=0)

    resumed = await world.sweeper(default_settings(concurrency=4)).run_timer()
    assert resumed.revoked + killed_at >= 200
    assert {identity for identity, counts in world.emulator.identities().items() if counts.get("revoke")} == set(live)
    assert world.successful("revoke") <= 200 + 2  # at most the calls in flight at the kill repeat


async def test_a_campaign_cancelled_mid_way_stops(world):
    await seed(world, 150, 0, "cancel-")
    service = campaigns(world)
    started = await service.start("false alarm")
    world.emulator.reset()
    world.emulator.set_faults(latencyMs=50)
    sweeper = world.sweeper(default_settings(concurrency=1), with_queue=False)
    first = await sweeper.run_timer(budget_seconds=2.6)  # claims items for about half a second, then stops
    world.emulator.set_faults(latencyMs=0)
    assert 0 < first.revoked < 150
    cancelled = await service.cancel(started["id"])
    assert cancelled is not None and cancelled["status"] == "cancelled"
    before = world.successful("revoke")
    again = await world.sweeper(default_settings(concurrency=4), with_queue=False).run_timer()
    assert again.revoked == 0 and world.successful("revoke") == before
