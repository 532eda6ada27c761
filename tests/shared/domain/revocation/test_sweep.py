"""The sweep's decisions against in-memory fakes and a fake clock: planning, budget, pacing, deferral, fan-out.

The same flows run against Azurite and the emulator in the ``*_integration`` modules next to
this one; here each decision is isolated and waiting costs no real time (``FakeTime``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.caller import Caller, orphan_key, user_digest
from shared.domain.errors import ConflictError, InvalidRequestError, ThrottledError, UnavailableError
from shared.domain.models import Action, IdentityRecord, request_row_key
from shared.domain.revocation.campaigns import Campaigns
from shared.domain.revocation.processor import DEFER_SECONDS, MAX_ATTEMPTS_PER_RUN
from shared.domain.revocation.sweep import (
    CHECKPOINT,
    LAST_BATCH,
    LAST_RUN,
    RevocationSettings,
    Sweeper,
    SweepOptions,
    build_sweeper,
)
from shared.domain.revocation.work import WorkItem, decode_batch
from shared.settings import load_revocation_settings
from tests.support.fakes import FakeAcs, FakeIdentityMap, FakeLedger, FakeQueue, FakeTime

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def settings(**changes: object) -> RevocationSettings:
    return dataclasses.replace(
        load_revocation_settings({"REVOCATION_RATE_PER_30S": "3000", "REVOCATION_CONCURRENCY": "4"}), **changes
    )


class World:
    """Fakes for every port, a fixed wall clock and a fake monotonic clock."""

    def __init__(self) -> None:
        self.acs = FakeAcs(clock=lambda: NOW)
        self.identities = FakeIdentityMap()
        self.ledger = FakeLedger()
        self.queue = FakeQueue()
        self.time = FakeTime()

    def sweeper(self, config: RevocationSettings | None = None, *, with_queue: bool = True) -> Sweeper:
        return build_sweeper(
            self.acs,
            self.identities,
            self.ledger,
            self.queue if with_queue else None,
            config or settings(),
            1440,
            clock=lambda: NOW,
            monotonic=self.time.monotonic,
            sleep=self.time.sleep,
            options=SweepOptions(resource="fake"),
        )

    async def user(self, name: str, *, issued: datetime = NOW, revoked: datetime | None = None) -> IdentityRecord:
        """A user with a live ACS identity, mapped, whose newest token was issued at ``issued``."""
        identity, _ = await self.acs.create_identity_with_token(["voip"])
        self.acs.calls.clear()
        return self.identities.put(IdentityRecord(Caller("dev", name).key, identity, issued - timedelta(days=1), issued, revoked))

    async def request(self, name: str, action: Action = "revoke") -> None:
        await self.ledger.record(action, Caller("dev", name).key, reason="test", source="operator", now=NOW)


@pytest.fixture
def fakes() -> World:
    return World()


async def test_recorded_requests_are_carried_out_once_and_completed(fakes: World) -> None:
    users = [await fakes.user(f"u{n}") for n in range(5)]
    for n in range(5):
        await fakes.request(f"u{n}")
    await fakes.request("never-signed-in")
    summary = await fakes.sweeper().run_timer()
    assert (summary.found, summary.revoked, summary.already_gone) == (6, 5, 1)
    assert sorted(identity for op, identity in fakes.acs.calls if op == "revoke") == sorted(u.acs_user_id for u in users)
    assert fakes.ledger.requests == {}
    assert all(fakes.identities.rows[u.user_key].last_revoked_at == NOW for u in users)
    assert fakes.ledger.status[LAST_RUN]["revoked"] == 5
    again = await fakes.sweeper().run_timer()
    assert again.found == 0 and fakes.acs.count("revoke") == 5


async def test_a_delete_request_removes_identity_and_mapping(fakes: World) -> None:
    user = await fakes.user("gone")
    await fakes.request("gone", "delete")
    summary = await fakes.sweeper().run_timer()
    assert summary.deleted == 1
    assert fakes.acs.identities[user.acs_user_id].deleted and user.user_key not in fakes.identities.rows


async def test_a_request_about_an_old_identity_leaves_the_users_new_mapping_alone(fakes: World) -> None:
    old_identity, _ = await fakes.acs.create_identity_with_token(["voip"])
    key = Caller("dev", "came-back").key
    await fakes.ledger.record("delete", key, reason="user deleted identity", source="user", now=NOW, acs_user_id=old_identity)
    new = await fakes.user("came-back")  # signed in again before the sweep ran: a new identity
    summary = await fakes.sweeper().run_timer()
    assert summary.deleted == 1 and fakes.acs.identities[old_identity].deleted
    assert fakes.identities.rows[key].acs_user_id == new.acs_user_id


async def test_max_session_revokes_only_stale_sessions_whose_tokens_still_live(fakes: World) -> None:
    stale = await fakes.user("stale", issued=NOW - timedelta(hours=5))
    fresh = await fakes.user("fresh", issued=NOW - timedelta(minutes=30))
    expired = await fakes.user("expired", issued=NOW - timedelta(hours=30))  # its tokens died on their own
    revoked_since = await fakes.user("revoked", issued=NOW - timedelta(hours=6), revoked=NOW - timedelta(hours=1))
    summary = await fakes.sweeper(settings(max_session_hours=2)).run_timer()
    assert summary.revoked == 1 and fakes.acs.calls == [("revoke", stale.acs_user_id)]
    assert {fresh.acs_user_id, expired.acs_user_id, revoked_since.acs_user_id}.isdisjoint(i for _, i in fakes.acs.calls)
    again = await fakes.sweeper(settings(max_session_hours=2)).run_timer()
    assert again.revoked == 0  # revoked since: not again


async def test_retention_deletes_idle_identities_and_keeps_active_ones(fakes: World) -> None:
    idle = await fakes.user("idle", issued=NOW - timedelta(days=10))
    active = await fakes.user("active", issued=NOW - timedelta(days=1))
    summary = await fakes.sweeper(settings(retention_days=7)).run_timer()
    assert summary.deleted == 1 and fakes.acs.calls == [("delete", idle.acs_user_id)]
    assert idle.user_key not in fakes.identities.rows and active.user_key in fakes.identities.rows


async def test_throttling_pauses_the_pacer_and_the_item_succeeds_within_the_run(fakes: World) -> None:
    await fakes.user("t")
    await fakes.request("t")
    fakes.acs.fail("revoke", ThrottledError("ACS busy", retry_after=7), times=2)
    summary = await fakes.sweeper().run_timer()
    assert (summary.revoked, summary.retried) == (1, 2)
    assert sum(fakes.time.slept) >= 14  # waited Retry-After twice, on the fake clock
    assert fakes.ledger.requests == {}


async def test_persistent_outage_defers_the_request_with_a_back_off(fakes: World) -> None:
    await fakes.user("o")
    await fakes.request("o")
    fakes.acs.fail("revoke", UnavailableError("down", retry_after=1), times=MAX_ATTEMPTS_PER_RUN)
    summary = await fakes.sweeper().run_timer()
    assert (summary.deferred, summary.retried) == (1, MAX_ATTEMPTS_PER_RUN - 1)
    [request] = fakes.ledger.requests.values()
    assert request.not_before == NOW + timedelta(seconds=DEFER_SECONDS) and request.attempts == 1
    assert (await fakes.sweeper().run_timer()).found == 0  # not due again before its back-off


async def test_a_request_acs_refuses_is_failed_and_kept(fakes: World) -> None:
    await fakes.user("bad")
    await fakes.request("bad")
    fakes.acs.fail("revoke", InvalidRequestError("ACS said 400"))
    summary = await fakes.sweeper().run_timer()
    assert summary.failed == 1 and len(fakes.ledger.requests) == 1


async def test_the_budget_stops_claiming_and_fans_the_rest_out_in_paced_batches(fakes: World) -> None:
    for n in range(25):
        await fakes.user(f"b{n}")
        await fakes.request(f"b{n}")
    config = settings(batch_size=10, rate_per_30s=300, concurrency=1)  # 10/s: one batch per second
    sweeper = fakes.sweeper(config)
    summary = await sweeper.run_timer(budget_seconds=0)  # nothing may be claimed
    assert (summary.found, summary.fanned_out, summary.batches, summary.stopped_by_budget) == (0, 25, 3, True)
    batches = [(decode_batch(text), delay) for text, delay in fakes.queue.messages]
    assert [len(items) for items, _ in batches] == [10, 10, 5]
    assert [delay for _, delay in batches] == [0, 1.0, 2.0]  # one pacing interval apart
    leased = {item.key for items, _ in batches for item in items}
    assert all(fakes.ledger.requests[key].not_before > NOW for key in leased)  # owned by the queue now
    assert fakes.ledger.status[CHECKPOINT]["batches"] == 3
    # The queue trigger then carries each batch out.
    for items, _ in batches:
        await sweeper.run_batch(items)
    assert fakes.acs.count("revoke") == 25 and fakes.ledger.requests == {}
    assert fakes.ledger.status[LAST_BATCH]["trigger"] == "queue"


async def test_policy_work_is_not_planned_again_while_queue_batches_own_it(fakes: World) -> None:
    for n in range(3):
        await fakes.user(f"s{n}", issued=NOW - timedelta(hours=5))
    sweeper = fakes.sweeper(settings(max_session_hours=2, batch_size=2))
    first = await sweeper.run_timer(budget_seconds=0)
    assert first.fanned_out == 3
    second = await sweeper.run_timer()
    assert second.found == 0 and fakes.acs.calls == []


async def test_a_queue_batch_re_enqueues_policy_items_it_could_not_do(fakes: World) -> None:
    user = await fakes.user("p", issued=NOW - timedelta(hours=5))
    fakes.acs.fail("revoke", UnavailableError("down", retry_after=1), times=MAX_ATTEMPTS_PER_RUN)
    summary = await fakes.sweeper(settings(max_session_hours=2)).run_batch([WorkItem("session", user_digest(user.user_key))])
    assert summary.deferred == 1 and summary.fanned_out == 1
    [(text, delay)] = fakes.queue.messages
    assert decode_batch(text) == [WorkItem("session", user_digest(user.user_key))] and delay == 60


async def test_without_a_queue_the_rest_is_found_again_by_the_next_run(fakes: World) -> None:
    for n in range(4):
        await fakes.user(f"n{n}")
        await fakes.request(f"n{n}")
    first = await fakes.sweeper(with_queue=False).run_timer(budget_seconds=0)
    assert first.stopped_by_budget and first.fanned_out == 0
    second = await fakes.sweeper(with_queue=False).run_timer()
    assert second.revoked == 4


async def test_the_pacer_holds_the_configured_rate_on_the_fake_clock(fakes: World) -> None:
    for n in range(40):
        await fakes.user(f"r{n}")
        await fakes.request(f"r{n}")
    started = fakes.time.monotonic()
    summary = await fakes.sweeper(settings(rate_per_30s=300, concurrency=8)).run_timer()  # 10 revokes/s, burst 8
    elapsed = fakes.time.monotonic() - started
    assert summary.revoked == 40
    assert elapsed >= (40 - 8) / 10  # at most the burst went at once; the rest at the rate


async def test_a_request_for_a_user_removed_from_the_ledger_meanwhile_is_skipped(fakes: World) -> None:
    await fakes.user("done")
    await fakes.request("done")
    row_key = request_row_key("revoke", Caller("dev", "done").key)
    summary = await fakes.sweeper().run_batch([WorkItem("request", row_key + "x")])
    assert summary.skipped == 1 and fakes.acs.calls == []


async def test_policies_skip_and_report_mappings_of_another_acs_resource(fakes: World) -> None:
    # A mapping of another resource (ACS would answer 401 IdentityNotOwned) never fails the sweep.
    key = Caller("dev", "elsewhere").key
    old = NOW - timedelta(days=10)
    fakes.identities.put(IdentityRecord(key, "8:acs:other_1", old, old, None, acs_resource="other.communication.azure.com"))
    stale = await fakes.user("stale", issued=NOW - timedelta(hours=5))
    summary = await fakes.sweeper(settings(max_session_hours=2, retention_days=7)).run_timer()
    assert (summary.foreign, summary.revoked, summary.failed) == (1, 1, 0)
    assert fakes.acs.calls == [("revoke", stale.acs_user_id)]  # none for the foreign identity
    assert key in fakes.identities.rows  # kept for an operator to see


async def test_a_request_about_a_legacy_foreign_identity_is_completed_as_foreign(fakes: World) -> None:
    key = Caller("dev", "legacy").key
    fakes.identities.put(IdentityRecord(key, "8:acs:other_2", NOW, NOW, None))  # no AcsResource recorded
    await fakes.request("legacy")
    summary = await fakes.sweeper().run_timer()
    assert (summary.foreign, summary.deferred, summary.failed) == (1, 0, 0)
    assert fakes.ledger.requests == {}  # ACS's IdentityNotOwned ends it: never pending forever


async def test_the_sweep_deletes_a_recorded_orphan(fakes: World) -> None:
    orphan, _ = await fakes.acs.create_identity_with_token(["voip"])
    await fakes.ledger.record("delete", orphan_key(orphan), reason="orphan", source="orphan", now=NOW, acs_user_id=orphan)
    summary = await fakes.sweeper().run_timer()
    assert summary.deleted == 1 and fakes.acs.identities[orphan].deleted and fakes.ledger.requests == {}


# ---------------------------------------------------------------- incident campaigns (issue 12, item 1)


def campaigns_of(fakes: World) -> Campaigns:
    return Campaigns(fakes.ledger, lambda: NOW, rate_per_second=100, monotonic=fakes.time.monotonic)


async def test_a_campaign_revokes_exactly_the_identities_that_can_hold_a_live_token(fakes: World) -> None:
    live = [await fakes.user(f"live{n}", issued=NOW - timedelta(hours=n + 1)) for n in range(5)]
    expired = [await fakes.user(f"old{n}", issued=NOW - timedelta(hours=25 + n)) for n in range(4)]
    already = await fakes.user("signed-out", issued=NOW - timedelta(hours=2), revoked=NOW)  # revoked at T: nothing left
    campaign = await campaigns_of(fakes).start("compromised signing key")
    summary = await fakes.sweeper().run_timer()
    revoked = {identity for op, identity in fakes.acs.calls if op == "revoke"}
    assert revoked == {record.acs_user_id for record in live}  # no call for expired-only or already revoked ones
    assert revoked.isdisjoint({record.acs_user_id for record in [*expired, already]})
    assert summary.revoked == 5
    done = await campaigns_of(fakes).get(campaign["id"])
    assert done is not None
    assert (done["status"], done["candidates"], done["revoked"], done["remaining"]) == ("done", 5, 5, 0)
    assert all(fakes.identities.rows[r.user_key].last_revoked_at == NOW for r in live)


async def test_a_campaign_leaves_identities_created_after_its_time_alone(fakes: World) -> None:
    """A sign-in during the incident holds no token from before T; a create in flight at T (within the margin) may."""
    before = await fakes.user("before", issued=NOW - timedelta(hours=1))
    in_flight = fakes.identities.put(
        IdentityRecord(
            Caller("dev", "in-flight").key, "8:acs:in_flight", NOW + timedelta(minutes=1), NOW + timedelta(minutes=1), None
        )
    )
    after = fakes.identities.put(
        IdentityRecord(Caller("dev", "after").key, "8:acs:after", NOW + timedelta(minutes=5), NOW + timedelta(minutes=5), None)
    )
    await campaigns_of(fakes).start("incident")
    await fakes.sweeper().run_timer()
    revoked = {identity for op, identity in fakes.acs.calls if op == "revoke"}
    assert before.acs_user_id in revoked and in_flight.acs_user_id in revoked
    assert after.acs_user_id not in revoked


async def test_a_campaign_stopped_by_the_budget_is_finished_by_the_next_run(fakes: World) -> None:
    for n in range(12):
        await fakes.user(f"u{n}", issued=NOW - timedelta(hours=1))
    campaign = await campaigns_of(fakes).start("incident")
    first = await fakes.sweeper(with_queue=False).run_timer(budget_seconds=0)  # killed before doing anything
    assert first.revoked == 0
    middle = await campaigns_of(fakes).get(campaign["id"])
    assert middle is not None and middle["status"] == "active"
    second = await fakes.sweeper(with_queue=False).run_timer()
    assert second.revoked == 12 and fakes.acs.count("revoke") == 12
    third = await fakes.sweeper(with_queue=False).run_timer()  # a rescan finds nothing: no call again
    assert third.revoked == 0 and fakes.acs.count("revoke") == 12
    assert (await campaigns_of(fakes).get(campaign["id"]) or {})["status"] == "done"


async def test_a_cancelled_campaign_stops(fakes: World) -> None:
    for n in range(6):
        await fakes.user(f"c{n}", issued=NOW - timedelta(hours=1))
    service = campaigns_of(fakes)
    campaign = await service.start("false alarm")
    await service.cancel(campaign["id"])
    summary = await fakes.sweeper().run_timer()
    assert summary.revoked == 0 and fakes.acs.count("revoke") == 0
    with pytest.raises(ConflictError):
        await service.cancel(campaign["id"])


async def test_campaign_items_fanned_out_are_carried_out_by_the_queue_and_counted(fakes: World) -> None:
    for n in range(25):
        await fakes.user(f"q{n}", issued=NOW - timedelta(hours=1))
    campaign = await campaigns_of(fakes).start("incident")
    sweeper = fakes.sweeper(settings(batch_size=10, rate_per_30s=300, concurrency=1))
    first = await sweeper.run_timer(budget_seconds=0)
    assert first.fanned_out == 25
    scanned = await campaigns_of(fakes).get(campaign["id"])
    assert scanned is not None and (scanned["candidates"], scanned["remaining"], scanned["scheduledUntil"] is not None) == (
        25,
        25,
        True,
    )
    for text, _ in fakes.queue.messages:
        await sweeper.run_batch(decode_batch(text))
    progressed = await campaigns_of(fakes).get(campaign["id"])
    assert progressed is not None and (progressed["revoked"], progressed["remaining"]) == (25, 0)


async def test_a_request_and_a_campaign_for_the_same_user_cost_one_acs_call(fakes: World) -> None:
    user = await fakes.user("both", issued=NOW - timedelta(hours=1))
    await fakes.request("both")  # the user's own request, recorded at NOW
    await campaigns_of(fakes).start("incident")  # T = NOW
    summary = await fakes.sweeper(settings(concurrency=1)).run_timer()
    # the request goes first and revokes at NOW, so the campaign's scan no longer finds the user
    assert fakes.acs.calls == [("revoke", user.acs_user_id)] and summary.found == 1
    assert fakes.ledger.requests == {}


async def test_a_request_older_than_a_campaigns_revocation_is_completed_without_a_call(fakes: World) -> None:
    user = await fakes.user("late", issued=NOW - timedelta(hours=1))
    await campaigns_of(fakes).start("incident")
    await fakes.sweeper().run_timer()  # the campaign revokes at NOW
    key = Caller("dev", "late").key
    await fakes.ledger.record("revoke", key, reason="sign out", source="user", now=NOW - timedelta(minutes=1))
    summary = await fakes.sweeper().run_timer()
    assert (summary.skipped, fakes.acs.count("revoke")) == (1, 1) and fakes.ledger.requests == {}
    assert fakes.identities.rows[user.user_key].last_revoked_at == NOW


async def test_a_campaign_before_time_may_not_lie_in_the_future(fakes: World) -> None:
    with pytest.raises(InvalidRequestError):
        await campaigns_of(fakes).start("typo", NOW + timedelta(days=1))
