"""Recorded requests and the two policies, carried out against Azurite and the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.caller import Caller
from shared.domain.revocation.sweep import LAST_RUN
from tests.support.sweep_world import REQUEST, default_settings, key_of

pytestmark = pytest.mark.integration


async def record_requests(world, users, action="revoke"):
    for user in users:
        await world.ledger.record(action, key_of(user), reason="test", source="operator", now=world.clock())


async def test_recorded_requests_are_revoked_and_their_tokens_die(world):
    grants = {user: await world.issue(user) for user in ("ann", "bob", "cat", "dan")}
    await record_requests(world, ["ann", "bob", "cat"])

    summary = await world.sweeper().run_timer()

    assert (summary.found, summary.revoked, summary.failed, summary.deferred) == (3, 3, 0, 0)
    assert world.successful("revoke") == 3
    for user in ("ann", "bob", "cat"):
        verdict = world.emulator.validate(grants[user].token.token)
        assert (verdict["valid"], verdict["reason"]) == (False, "revoked")
        record = await world.store.get(key_of(user))
        assert record.last_revoked_at is not None and record.last_revoked_at >= record.last_issued_at
    assert world.emulator.validate(grants["dan"].token.token)["valid"] is True
    assert await world.ledger.count_pending() == (0, False)
    status = await world.ledger.load_status(LAST_RUN)
    assert status["revoked"] == 3 and status["trigger"] == "timer"

    again = await world.sweeper().run_timer()  # nothing left: no second revoke in ACS
    assert again.found == 0 and world.successful("revoke") == 3


async def test_a_user_without_identity_is_already_gone_and_completed(world):
    await record_requests(world, ["nobody"])
    summary = await world.sweeper().run_timer()
    assert (summary.found, summary.already_gone, summary.revoked) == (1, 1, 0)
    assert await world.ledger.count_pending() == (0, False)
    assert world.successful("revoke") == 0


async def test_delete_request_removes_identity_and_mapping(world):
    grant = await world.issue("erin")
    await record_requests(world, ["erin"], action="delete")
    summary = await world.sweeper().run_timer()
    assert summary.deleted == 1
    assert await world.store.get(key_of("erin")) is None
    assert world.emulator.validate(grant.token.token)["valid"] is False
    assert world.successful("delete") == 1


async def test_a_request_repeated_while_pending_is_one_request(world):
    await world.issue("fay")
    await record_requests(world, ["fay", "fay", "fay"])
    assert (await world.ledger.count_pending())[0] == 1
    summary = await world.sweeper().run_timer()
    assert summary.revoked == 1 and world.successful("revoke") == 1


async def test_max_session_age_revokes_only_stale_sessions_once(world):
    old = {user: await world.issue(user) for user in ("gus", "hal")}
    world.offset[0] = timedelta(hours=3)  # three hours later...
    fresh = await world.issue("ivy")  # ...ivy signs in
    await world.tokens.refresh(Caller("dev", "hal", frozenset()), REQUEST)  # hal refreshes: re-authenticated

    sweeper = world.sweeper(default_settings(max_session_hours=2))
    summary = await sweeper.run_timer()

    assert summary.revoked == 1 and world.successful("revoke") == 1  # gus only
    assert world.emulator.validate(old["gus"].token.token)["reason"] == "revoked"
    assert world.emulator.validate(fresh.token.token)["valid"] is True
    assert (await sweeper.run_timer()).revoked == 0  # revoked since: not again
    assert world.successful("revoke") == 1


async def test_max_session_age_ignores_sessions_whose_tokens_expired_anyway(world):
    await world.issue("jon")
    world.offset[0] = timedelta(hours=30)  # past the longest token lifetime (24 h)
    summary = await world.sweeper(default_settings(max_session_hours=2)).run_timer()
    assert summary.found == 0 and world.successful("revoke") == 0


async def test_retention_deletes_idle_identities_but_not_active_ones(world):
    idle = await world.issue("kim")
    world.offset[0] = timedelta(days=10)
    active = await world.issue("lee")

    summary = await world.sweeper(default_settings(retention_days=7)).run_timer()

    assert (summary.found, summary.deleted) == (1, 1)
    assert await world.store.get(key_of("kim")) is None
    assert await world.store.get(key_of("lee")) is not None
    assert world.emulator.validate(idle.token.token)["valid"] is False
    assert world.emulator.validate(active.token.token)["valid"] is True
    assert world.successful("delete") == 1
