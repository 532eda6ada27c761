"""What a token request costs: counted round trips against real Azurite and the emulator."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableClient

from localdev.azurite import start_azurite
from localdev.emulator_process import start_emulator
from shared.adapters.acs import AcsIdentityClient
from shared.adapters.identity_map import TableIdentityMap
from shared.adapters.ledger import TableRevocationLedger
from shared.domain.caller import Caller, orphan_key
from shared.domain.clock import utc_now
from shared.domain.policy import TokenRequest
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.token_service import TokenService
from shared.settings import load_acs_settings, load_storage_settings

pytestmark = pytest.mark.integration

REQUEST = TokenRequest(scopes=("voip",), expires_in_minutes=60)


class CountingStore(TableIdentityMap):
    """The real store, counting every call to its Table client: each is one round trip to Table storage."""

    ROUND_TRIPS = ("get_entity", "create_entity", "upsert_entity", "update_entity", "delete_entity", "create_table")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []
        for name in self.ROUND_TRIPS:
            original = getattr(self._table, name)

            async def counted(*call_args, _name=name, _original=original, **call_kwargs):
                if _name != "create_table":  # once per process, not per request
                    self.calls.append(_name)
                return await _original(*call_args, **call_kwargs)

            setattr(self._table, name, counted)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    with (
        start_azurite(location=tmp_path_factory.mktemp("azurite")) as azurite,
        start_emulator(cert_dir=tmp_path_factory.mktemp("cert")) as emulator,
    ):
        yield azurite, emulator


@pytest.fixture
async def service(stand_ins):
    azurite, emulator = stand_ins
    storage = load_storage_settings(
        {"AzureWebJobsStorage": azurite.connection_string, "IDENTITY_TABLE_NAME": "c" + uuid.uuid4().hex[:12]}
    )
    store = CountingStore.from_settings(storage, {})
    ledger = TableRevocationLedger(TableClient.from_connection_string(azurite.connection_string, "l" + uuid.uuid4().hex[:12]))
    wrapper = AcsIdentityClient.from_settings(
        load_acs_settings({"ACS_CONNECTION_STRING": emulator.connection_string, "ACS_CA_BUNDLE": str(emulator.cert_path)}), {}
    )
    yield TokenService(wrapper, store, ledger, PerUserRateLimiter(0)), store, emulator, ledger
    await wrapper.close()
    await store.close()
    await ledger.close()


async def test_warm_issue_is_one_acs_call_and_one_store_round_trip(service):
    tokens, store, emulator, _ = service
    caller = Caller("dev", "warm", frozenset())
    await tokens.issue(caller, REQUEST)  # cold: creates the identity
    store.calls.clear()
    before = emulator.stats()["operations"]
    await tokens.issue(caller, REQUEST)
    after = emulator.stats()["operations"]
    assert store.calls == ["update_entity"]  # LastIssuedAt, merged beside the ACS call
    assert {op: after.get(op, 0) - before.get(op, 0) for op in after} == {op: (1 if op == "issue" else 0) for op in after}


async def test_cold_issue_is_one_acs_call_and_three_store_round_trips(service):
    tokens, store, emulator, _ = service
    before = emulator.stats()["operations"]
    grant = await tokens.issue(Caller("dev", "cold", frozenset()), REQUEST)
    after = emulator.stats()["operations"]
    # the read, the reverse-index entry (written before the mapping), the mapping (it also records LastIssuedAt)
    assert store.calls == ["get_entity", "upsert_entity", "create_entity"]
    assert after["create"] - before.get("create", 0) == 1 and after.get("issue", 0) == before.get("issue", 0)
    assert emulator.validate(grant.token.token)["valid"] is True


async def test_stale_cache_after_delete_elsewhere_heals(service):
    tokens, store, emulator, ledger = service
    caller = Caller("dev", "deleted-elsewhere", frozenset())
    first = await tokens.issue(caller, REQUEST)
    other_worker = TokenService(tokens._acs, store, ledger, PerUserRateLimiter(0))
    await other_worker.delete(caller)
    second = await tokens.issue(caller, REQUEST)  # this worker still caches the deleted id
    assert second.communication_user_id != first.communication_user_id
    assert emulator.validate(second.token.token)["valid"] is True
    assert (await store.get(caller.key)).acs_user_id == second.communication_user_id


async def test_a_second_pending_delete_keeps_the_first_identitys_request(service):
    """Delete refused by ACS, sign in again, delete refused again: both identities stay recorded and get deleted.

    The ledger merges a user's requests into one row; merging the second into the first used to overwrite the
    first identity's id, leaving it alive with no mapping and no request (an orphan nobody could trace).
    """
    token_service, _, emulator, ledger = service
    user = Caller("dev", f"twice-{uuid.uuid4().hex[:8]}")
    first = await token_service.issue(user, REQUEST)
    emulator.set_faults(unavailableRate=1.0, retryAfterSeconds=1)
    try:
        assert (await token_service.delete(user)).name == "PENDING"
        emulator.set_faults(unavailableRate=0.0)
        second = await token_service.issue(user, REQUEST)
        emulator.set_faults(unavailableRate=1.0, retryAfterSeconds=1)
        assert (await token_service.delete(user)).name == "PENDING"
    finally:
        emulator.set_faults(unavailableRate=0.0)
    pending = {request.acs_user_id: request async for request in ledger.due(utc_now() + timedelta(minutes=5))}
    assert set(pending) == {first.communication_user_id, second.communication_user_id}
    assert pending[second.communication_user_id].user_key == user.key
    assert pending[first.communication_user_id].user_key == orphan_key(first.communication_user_id)
    assert {pending[first.communication_user_id].action, pending[second.communication_user_id].action} == {"delete"}
