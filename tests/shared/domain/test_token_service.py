"""The token service's decisions, against in-memory fakes: races, orphans, stale mappings, pending work.

The same behaviours are checked against Azurite and the emulator in
``test_token_service_integration.py`` and through the app in ``tests/app``; here they run in
milliseconds, one decision at a time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.caller import Caller, orphan_key
from shared.domain.errors import NotFoundError, ThrottledError, UnavailableError
from shared.domain.models import IdentityRecord, request_row_key
from shared.domain.policy import TokenRequest
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.token_service import Completion, TokenService
from tests.support.fakes import FakeAcs, FakeIdentityMap, FakeLedger

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REQUEST = TokenRequest(scopes=("voip",), expires_in_minutes=60)
ALICE = Caller("dev", "alice")


class World:
    """A token service over fakes, with its clock at NOW unless a test moves ``now[0]``."""

    def __init__(self, per_minute: int = 0) -> None:
        self.now = [NOW]
        self.acs = FakeAcs(clock=lambda: NOW)
        self.identities = FakeIdentityMap()
        self.ledger = FakeLedger()
        self.service = TokenService(
            self.acs, self.identities, self.ledger, PerUserRateLimiter(per_minute), clock=lambda: self.now[0], resource="fake"
        )


@pytest.fixture
def fakes() -> World:
    return World()


async def test_first_issue_creates_one_identity_and_maps_it(fakes: World) -> None:
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert fakes.acs.count("create") == 1
    record = fakes.identities.rows[ALICE.key]
    assert (record.acs_user_id, record.created_at, record.last_issued_at) == (grant.communication_user_id, NOW, NOW)
    assert grant.scopes == ("voip",)
    assert fakes.acs.is_valid(grant.token.token)


async def test_warm_issue_is_one_acs_call_and_one_store_write(fakes: World) -> None:
    first = await fakes.service.issue(ALICE, REQUEST)
    fakes.identities.calls.clear()
    fakes.acs.calls.clear()
    second = await fakes.service.issue(ALICE, REQUEST)
    assert second.communication_user_id == first.communication_user_id
    assert fakes.acs.calls == [("issue", first.communication_user_id)]
    assert dict(fakes.identities.calls) == {"record_issued": 1}  # the worker's cache spares the read


async def test_refresh_never_creates_an_identity(fakes: World) -> None:
    with pytest.raises(NotFoundError):
        await fakes.service.refresh(ALICE, REQUEST)
    assert fakes.acs.calls == [] and fakes.identities.rows == {}


async def test_concurrent_first_calls_keep_one_identity_and_delete_the_orphan(fakes: World) -> None:
    grants = await asyncio.gather(*(fakes.service.issue(ALICE, REQUEST) for _ in range(5)))
    winner = fakes.identities.rows[ALICE.key].acs_user_id
    assert {grant.communication_user_id for grant in grants} == {winner}
    created = [identity for operation, identity in fakes.acs.calls if operation == "create"]
    deleted = [identity for operation, identity in fakes.acs.calls if operation == "delete"]
    assert len(created) == 5 and sorted(deleted) == sorted(set(created) - {winner})  # every loser's orphan, once
    assert all(fakes.acs.is_valid(grant.token.token) for grant in grants)


async def test_a_failed_mapping_write_leaves_no_orphan_identity(fakes: World) -> None:
    fakes.identities.fail("insert", UnavailableError("storage down", retry_after=7))
    with pytest.raises(UnavailableError) as caught:
        await fakes.service.issue(ALICE, REQUEST)
    assert caught.value.retry_after == 7
    [(_, created)] = [call for call in fakes.acs.calls if call[0] == "create"]
    assert ("delete", created) in fakes.acs.calls and fakes.acs.identities[created].deleted
    assert fakes.identities.rows == {}


async def test_a_mapping_to_an_identity_deleted_elsewhere_heals_on_the_next_issue(fakes: World) -> None:
    first = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.identities[first.communication_user_id].deleted = True  # e.g. deleted by another worker or an operator
    second = await fakes.service.issue(ALICE, REQUEST)
    assert second.communication_user_id != first.communication_user_id
    assert fakes.identities.rows[ALICE.key].acs_user_id == second.communication_user_id
    assert fakes.acs.is_valid(second.token.token)


async def test_refresh_of_a_stale_mapping_drops_it_and_says_not_found(fakes: World) -> None:
    first = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.identities[first.communication_user_id].deleted = True
    with pytest.raises(NotFoundError):
        await fakes.service.refresh(ALICE, REQUEST)
    assert ALICE.key not in fakes.identities.rows


async def test_revoke_records_then_revokes_then_completes(fakes: World) -> None:
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert await fakes.service.revoke(ALICE) is Completion.DONE
    assert not fakes.acs.is_valid(grant.token.token)
    assert fakes.ledger.requests == {}  # completed only after ACS answered
    assert fakes.identities.rows[ALICE.key].last_revoked_at == NOW


async def test_revoke_without_an_identity_is_nothing_to_do(fakes: World) -> None:
    assert await fakes.service.revoke(ALICE) is Completion.NOTHING_TO_DO
    assert fakes.ledger.requests == {} and fakes.acs.calls == []


@pytest.mark.parametrize("error", [ThrottledError("busy", retry_after=30), UnavailableError("down")])
async def test_revoke_when_acs_is_busy_is_pending_and_stays_recorded(fakes: World, error: Exception) -> None:
    grant = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.fail("revoke", error)
    assert await fakes.service.revoke(ALICE) is Completion.PENDING
    [request] = fakes.ledger.requests.values()
    assert (request.action, request.user_key, request.acs_user_id, request.source) == (
        "revoke",
        ALICE.key,
        grant.communication_user_id,
        "user",
    )
    assert fakes.acs.is_valid(grant.token.token)  # not yet: the sweep finishes it


async def test_revoke_of_an_identity_gone_from_acs_drops_the_mapping(fakes: World) -> None:
    grant = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.identities[grant.communication_user_id].deleted = True
    assert await fakes.service.revoke(ALICE) is Completion.NOTHING_TO_DO
    assert ALICE.key not in fakes.identities.rows and fakes.ledger.requests == {}


async def test_delete_unmaps_at_once_then_deletes_in_acs(fakes: World) -> None:
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert await fakes.service.delete(ALICE) is Completion.DONE
    assert ALICE.key not in fakes.identities.rows
    assert fakes.acs.identities[grant.communication_user_id].deleted
    assert fakes.ledger.requests == {}
    assert await fakes.service.delete(ALICE) is Completion.NOTHING_TO_DO  # idempotent


async def test_delete_when_acs_is_down_is_pending_with_the_identity_recorded(fakes: World) -> None:
    grant = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.fail("delete", UnavailableError("down"))
    assert await fakes.service.delete(ALICE) is Completion.PENDING
    assert ALICE.key not in fakes.identities.rows  # the user is disconnected at once
    [request] = fakes.ledger.requests.values()
    assert (request.row_key, request.acs_user_id) == (request_row_key("delete", ALICE.key), grant.communication_user_id)
    fresh = await fakes.service.issue(ALICE, REQUEST)  # a new sign-in gets a new identity meanwhile
    assert fresh.communication_user_id != grant.communication_user_id


async def test_a_second_pending_delete_sets_the_first_identitys_request_aside(fakes: World) -> None:
    first = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.fail("delete", UnavailableError("down"))
    assert await fakes.service.delete(ALICE) is Completion.PENDING
    second = await fakes.service.issue(ALICE, REQUEST)
    fakes.acs.fail("delete", UnavailableError("down"))
    assert await fakes.service.delete(ALICE) is Completion.PENDING
    pending = {request.row_key: request.acs_user_id for request in fakes.ledger.requests.values()}
    assert pending == {
        request_row_key("delete", ALICE.key): second.communication_user_id,
        request_row_key("delete", orphan_key(first.communication_user_id)): first.communication_user_id,
    }


async def test_a_storage_outage_on_the_warm_path_is_unavailable_and_issues_nothing(fakes: World) -> None:
    await fakes.service.issue(ALICE, REQUEST)
    fakes.identities.fail("record_issued", UnavailableError("storage down", retry_after=3))
    with pytest.raises(UnavailableError):
        await fakes.service.issue(ALICE, REQUEST)


async def test_the_per_user_limit_is_checked_before_any_call() -> None:
    fakes = World(per_minute=2)
    await fakes.service.issue(ALICE, REQUEST)
    await fakes.service.refresh(ALICE, REQUEST)
    calls = list(fakes.acs.calls)
    with pytest.raises(ThrottledError) as caught:
        await fakes.service.issue(ALICE, REQUEST)
    assert caught.value.code == "rate_limited" and caught.value.retry_after >= 1
    assert fakes.acs.calls == calls
    await fakes.service.issue(Caller("dev", "bob"), REQUEST)  # other users are not affected


async def test_a_mapping_seeded_by_another_worker_is_used_not_recreated(fakes: World) -> None:
    identity, _ = await fakes.acs.create_identity_with_token(["voip"])
    fakes.identities.put(IdentityRecord(ALICE.key, identity, NOW - timedelta(days=3), NOW - timedelta(days=1), None))
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert grant.communication_user_id == identity and fakes.acs.count("create") == 1


async def test_teams_exchange_spends_the_callers_budget() -> None:
    fakes = World(per_minute=1)
    token = await fakes.service.exchange_teams_token(ALICE, "entra-token", "app-id", "user-object-id")
    assert token.token.startswith("token-8:orgid:user-object-id")
    with pytest.raises(ThrottledError):
        await fakes.service.exchange_teams_token(ALICE, "entra-token", "app-id", "user-object-id")


class TwoWorkers:
    """Two workers (instances) with their own caches over the same ACS and identity map, as in a fleet."""

    def __init__(self) -> None:
        self.acs = FakeAcs(clock=lambda: NOW)
        self.identities = FakeIdentityMap()
        self.ledger = FakeLedger()
        self.a, self.b = (
            TokenService(self.acs, self.identities, self.ledger, PerUserRateLimiter(0), clock=lambda: NOW) for _ in range(2)
        )


async def deleted_on_b_and_recreated() -> tuple[TwoWorkers, str]:
    """A knows the user's identity; B deletes it and the user signs in again through B (a new identity)."""
    fleet = TwoWorkers()
    old = await fleet.a.issue(ALICE, REQUEST)
    assert await fleet.b.delete(ALICE) is Completion.DONE
    new = await fleet.b.issue(ALICE, REQUEST)
    assert new.communication_user_id != old.communication_user_id
    return fleet, new.token.token


async def test_a_revoke_through_another_worker_revokes_the_users_current_identity() -> None:
    # Found by the fleet rig (tests/fleet): A's cache still held the deleted identity, so the revoke
    # reached a dead identity (ACS 404), answered 204 and left the new identity's tokens alive.
    fleet, new_token = await deleted_on_b_and_recreated()
    assert await fleet.a.revoke(ALICE) is Completion.DONE
    assert not fleet.acs.is_valid(new_token)


async def test_a_refresh_through_another_worker_finds_the_users_current_identity() -> None:
    fleet, _ = await deleted_on_b_and_recreated()
    grant = await fleet.a.refresh(ALICE, REQUEST)  # was a 404 identity_not_found from A's stale cache
    assert grant.communication_user_id == fleet.identities.rows[ALICE.key].acs_user_id
    assert fleet.acs.count("create") == 2  # and no third identity for it


async def test_an_issue_through_another_worker_uses_the_current_identity_without_an_orphan() -> None:
    fleet, _ = await deleted_on_b_and_recreated()
    grant = await fleet.a.issue(ALICE, REQUEST)
    assert grant.communication_user_id == fleet.identities.rows[ALICE.key].acs_user_id
    assert fleet.acs.count("create") == 2 and fleet.acs.count("delete") == 1  # only the user's own delete


# ---------------------------------------------------------------- mappings of another ACS resource
# Real ACS answers 401 IdentityNotOwned for an identity of another resource (Azure/azure-sdk-assets,
# python/communication/azure-communication-identity recordings; emulator/references.py). A mapping
# made with another resource (a moved deployment, shared storage, a restore) must never give a 500.


def foreign_record(acs_resource: str | None = "other.communication.azure.com") -> IdentityRecord:
    return IdentityRecord(
        ALICE.key, "8:acs:other_1", NOW - timedelta(days=9), NOW - timedelta(days=2), None, acs_resource=acs_resource
    )


async def test_a_mapping_of_another_resource_is_replaced_by_an_identity_here(fakes: World) -> None:
    fakes.identities.put(foreign_record())
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert grant.communication_user_id.startswith("8:acs:fake_") and fakes.acs.is_valid(grant.token.token)
    row = fakes.identities.rows[ALICE.key]
    assert (row.acs_user_id, row.acs_resource) == (grant.communication_user_id, "fake")
    assert (row.previous_acs_user_id, row.previous_acs_resource, row.replaced_at) == (
        "8:acs:other_1",
        "other.communication.azure.com",
        NOW,
    )
    assert ("issue", "8:acs:other_1") not in fakes.acs.calls  # a known foreign mapping costs no ACS call


async def test_a_legacy_mapping_acs_calls_foreign_is_replaced_too(fakes: World) -> None:
    fakes.identities.put(foreign_record(acs_resource=None))  # written before mappings recorded their resource
    with pytest.raises(NotFoundError):
        await fakes.service.refresh(ALICE, REQUEST)  # never creates: "call POST /api/token first"
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert fakes.identities.rows[ALICE.key].acs_user_id == grant.communication_user_id
    assert fakes.identities.rows[ALICE.key].previous_acs_user_id == "8:acs:other_1"
    assert (await fakes.service.refresh(ALICE, REQUEST)).communication_user_id == grant.communication_user_id


async def test_concurrent_first_calls_over_a_foreign_mapping_agree_on_one_new_identity(fakes: World) -> None:
    fakes.identities.put(foreign_record())
    grants = await asyncio.gather(*(fakes.service.issue(ALICE, REQUEST) for _ in range(4)))
    winner = fakes.identities.rows[ALICE.key].acs_user_id
    assert {grant.communication_user_id for grant in grants} == {winner}
    created = [identity for operation, identity in fakes.acs.calls if operation == "create"]
    assert sorted(identity for op, identity in fakes.acs.calls if op == "delete") == sorted(set(created) - {winner})


async def test_revoke_with_a_foreign_mapping_is_nothing_to_do_and_keeps_it(fakes: World) -> None:
    fakes.identities.put(foreign_record())
    assert await fakes.service.revoke(ALICE) is Completion.NOTHING_TO_DO
    assert fakes.acs.calls == [] and fakes.ledger.requests == {} and ALICE.key in fakes.identities.rows


async def test_revoke_with_a_legacy_foreign_mapping_completes_the_request(fakes: World) -> None:
    fakes.identities.put(foreign_record(acs_resource=None))
    assert await fakes.service.revoke(ALICE) is Completion.NOTHING_TO_DO
    assert fakes.ledger.requests == {}  # ACS said IdentityNotOwned: done, nothing pending forever


async def test_delete_with_a_foreign_mapping_removes_the_mapping_only(fakes: World) -> None:
    fakes.identities.put(foreign_record())
    assert await fakes.service.delete(ALICE) is Completion.DONE
    assert ALICE.key not in fakes.identities.rows and fakes.acs.calls == []


# ---------------------------------------------------------------- revoke budget (issue 11: one user drained the revoke quota)


async def test_a_repeated_revoke_costs_no_acs_call_until_a_new_token_is_issued(fakes: World) -> None:
    await fakes.service.issue(ALICE, REQUEST)
    later = fakes.now
    later[0] = NOW + timedelta(minutes=3)  # well after the last issue: no issue can still be in flight
    assert await fakes.service.revoke(ALICE) is Completion.DONE
    for _ in range(20):
        assert await fakes.service.revoke(ALICE) is Completion.DONE
    assert fakes.acs.count("revoke") == 1 and fakes.ledger.requests == {}
    later[0] = NOW + timedelta(minutes=4)
    grant = await fakes.service.issue(ALICE, REQUEST)  # a new token: the next revoke must reach ACS
    later[0] = NOW + timedelta(minutes=10)
    assert await fakes.service.revoke(ALICE) is Completion.DONE
    assert fakes.acs.count("revoke") == 2 and not fakes.acs.is_valid(grant.token.token)


async def test_a_revoke_right_after_an_issue_is_not_skipped(fakes: World) -> None:
    # LastIssuedAt is written beside the ACS call: a token may be minted just after it. A revoke that
    # began within the in-flight margin of the last issue is sent to ACS again.
    await fakes.service.issue(ALICE, REQUEST)
    assert await fakes.service.revoke(ALICE) is Completion.DONE
    assert await fakes.service.revoke(ALICE) is Completion.DONE
    assert fakes.acs.count("revoke") == 2


async def test_revokes_and_deletes_spend_their_own_per_user_budget() -> None:
    fakes = World()
    fakes.service._revoke_limiter = PerUserRateLimiter(2, period_seconds=3600, what="revokes and deletes")
    await fakes.service.issue(ALICE, REQUEST)
    assert await fakes.service.revoke(ALICE) is Completion.DONE
    assert await fakes.service.delete(ALICE) is Completion.DONE
    with pytest.raises(ThrottledError) as caught:
        await fakes.service.revoke(ALICE)
    assert caught.value.code == "rate_limited" and caught.value.retry_after > 60  # about half an hour
    assert "revokes and deletes" in caught.value.message
    assert await fakes.service.revoke(Caller("dev", "bob")) is Completion.NOTHING_TO_DO  # bob's budget is his own


# ---------------------------------------------------------------- stale mappings and orphans (found by the soak test)


async def test_an_uncached_mapping_to_a_deleted_identity_is_replaced_not_kept(fakes: World) -> None:
    gone, _ = await fakes.acs.create_identity_with_token(["voip"])
    fakes.acs.identities[gone].deleted = True
    fakes.identities.put(IdentityRecord(ALICE.key, gone, NOW - timedelta(days=1), NOW - timedelta(days=1), None))
    grant = await fakes.service.issue(ALICE, REQUEST)  # our own LastIssuedAt write changes the row's ETag first
    assert grant.communication_user_id != gone and fakes.acs.is_valid(grant.token.token)
    assert fakes.identities.rows[ALICE.key].acs_user_id == grant.communication_user_id


async def test_a_race_won_by_a_mapping_to_a_deleted_identity_ends_with_ours(fakes: World) -> None:
    gone, _ = await fakes.acs.create_identity_with_token(["voip"])
    fakes.acs.identities[gone].deleted = True
    fakes.identities.put(IdentityRecord(ALICE.key, gone, NOW, NOW, None))
    grant = await fakes.service._create_and_issue(ALICE.key, REQUEST, replacing=None)  # the insert meets that row
    assert fakes.identities.rows[ALICE.key].acs_user_id == grant.communication_user_id != gone
    assert fakes.acs.is_valid(grant.token.token)


async def test_an_orphan_acs_would_not_delete_is_recorded_for_the_sweep(fakes: World) -> None:
    fakes.identities.fail("insert", UnavailableError("storage hiccup"))
    fakes.acs.fail("delete", ThrottledError("ACS busy", retry_after=30))
    with pytest.raises(UnavailableError):
        await fakes.service.issue(ALICE, REQUEST)
    [(_, orphan)] = [call for call in fakes.acs.calls if call[0] == "create"]
    [request] = fakes.ledger.requests.values()
    assert (request.action, request.acs_user_id, request.source) == ("delete", orphan, "orphan")
    assert request.row_key == request_row_key("delete", orphan_key(orphan))


async def test_an_insert_whose_answer_was_lost_and_retried_is_recognised_as_ours(fakes: World) -> None:
    real_insert = fakes.identities.insert

    async def insert_then_conflict(user_key, acs_user_id, now, *, resource=None):
        await real_insert(user_key, acs_user_id, now, resource=resource)  # stored, but the answer was lost ...
        return await real_insert(user_key, acs_user_id, now, resource=resource)  # ... and the retry meets it

    fakes.identities.insert = insert_then_conflict  # type: ignore[method-assign]
    grant = await fakes.service.issue(ALICE, REQUEST)
    assert fakes.identities.rows[ALICE.key].acs_user_id == grant.communication_user_id
    assert fakes.acs.count("delete") == 0 and fakes.acs.is_valid(grant.token.token)  # not deleted as an "orphan"


async def test_with_a_fleet_issue_budget_a_spent_share_is_429_without_asking_acs() -> None:
    from shared.domain.revocation.budget import FleetBudget
    from tests.support.fakes import FakeBudgetStore

    fakes = World()
    wall = [1_000_000.0]
    store = FakeBudgetStore()
    fakes.service._issue_budget = FleetBudget(store, "issue", 32, wall=lambda: wall[0])  # 2 issues per 2 s window
    await fakes.service.issue(ALICE, REQUEST)  # creates (no issue budget needed for a create)
    await fakes.service.issue(ALICE, REQUEST)
    await fakes.service.issue(ALICE, REQUEST)
    calls = len(fakes.acs.calls)
    with pytest.raises(ThrottledError) as caught:
        await fakes.service.issue(ALICE, REQUEST)
    assert caught.value.retry_after >= 1 and len(fakes.acs.calls) == calls  # ACS was not asked
    wall[0] += 2.0
    assert (await fakes.service.issue(ALICE, REQUEST)).token.token
