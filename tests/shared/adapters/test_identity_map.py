"""The identity map against real Azurite: round trips, awkward keys, races, sweeps, outages."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from localdev.azurite import start_azurite
from shared.adapters.identity_map import TableIdentityMap, entity_keys
from shared.adapters.storage import storage_credential
from shared.domain.errors import UnavailableError
from shared.domain.models import IdentityConflict
from shared.settings import load_storage_settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with start_azurite(location=tmp_path_factory.mktemp("azurite")) as process:
        yield process


@pytest.fixture
async def store(azurite):
    settings = load_storage_settings(
        {"AzureWebJobsStorage": azurite.connection_string, "IDENTITY_TABLE_NAME": "t" + uuid.uuid4().hex[:12]}
    )
    instance = TableIdentityMap.from_settings(settings, {})
    yield instance
    await instance.close()


async def test_insert_get_roundtrip(store):
    assert await store.get("dev|alice") is None
    inserted = await store.insert("dev|alice", "8:acs:1", NOW)
    fetched = await store.get("dev|alice")
    assert fetched == inserted
    assert (fetched.acs_user_id, fetched.created_at, fetched.last_issued_at, fetched.last_revoked_at) == (
        "8:acs:1",
        NOW,
        NOW,
        None,
    )


@pytest.mark.parametrize("key", ["a/b#c?d\\e", "ユーザー|🙂", "x" * 2000, '["https://login.example.com/v2.0","oid"]'])
async def test_awkward_user_keys(store, key):
    await store.insert(key, "8:acs:awkward", NOW)
    assert (await store.get(key)).user_key == key
    partition, row = entity_keys(key)
    assert len(row) == 64 and row.startswith(partition)


async def test_concurrent_inserts_have_one_winner(store):
    results = await asyncio.gather(*(store.insert("dev|racer", f"8:acs:{n}", NOW) for n in range(20)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, IdentityConflict)]
    assert len(winners) == 1 and len(losers) == 19
    assert {loser.existing.acs_user_id for loser in losers} == {winners[0].acs_user_id}


async def test_record_issued_and_revoked_touch_only_their_field(store):
    await store.insert("dev|bob", "8:acs:bob", NOW)
    await store.record_revoked("dev|bob", NOW + timedelta(minutes=1))
    await store.record_issued("dev|bob", NOW + timedelta(minutes=2))
    record = await store.get("dev|bob")
    assert record.acs_user_id == "8:acs:bob" and record.created_at == NOW
    assert record.last_revoked_at == NOW + timedelta(minutes=1)
    assert record.last_issued_at == NOW + timedelta(minutes=2)


async def test_records_for_deleted_users_are_not_recreated(store):
    await store.record_issued("dev|ghost", NOW)
    await store.record_revoked("dev|ghost", NOW)
    assert await store.get("dev|ghost") is None


async def test_delete_is_idempotent(store):
    await store.insert("dev|carol", "8:acs:carol", NOW)
    await store.delete("dev|carol")
    assert await store.get("dev|carol") is None
    await store.delete("dev|carol")  # deleting again is not an error
    assert await store.get("dev|carol") is None


async def test_iter_records_filters_and_pages(store):
    for n in range(7):
        await store.insert(f"dev|u{n}", f"8:acs:{n}", NOW - timedelta(hours=n))
    everyone = [r async for r in store.iter_records(page_size=2)]
    assert sorted(r.user_key for r in everyone) == [f"dev|u{n}" for n in range(7)]
    recent = [r async for r in store.iter_records(issued_since=NOW - timedelta(hours=2, minutes=30), page_size=2)]
    assert sorted(r.user_key for r in recent) == ["dev|u0", "dev|u1", "dev|u2"]


async def test_storage_down_is_unavailable_quickly_and_quietly():
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    store = TableIdentityMap.from_settings(load_storage_settings({"AzureWebJobsStorage": dead}), {})
    started = time.monotonic()
    with pytest.raises(UnavailableError) as caught:
        await store.get("dev|anyone")
    assert time.monotonic() - started < 30  # retries are bounded, not minutes long
    assert "c2VjcmV0" not in str(caught.value) and caught.value.retry_after >= 1
    await store.close()


def test_credential_selection_without_network():
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    settings = load_storage_settings({"AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net"})
    in_azure = storage_credential(settings, {"WEBSITE_INSTANCE_ID": "x"})
    on_laptop = storage_credential(settings, {})
    assert isinstance(in_azure, ManagedIdentityCredential) and isinstance(on_laptop, DefaultAzureCredential)
    asyncio.run(in_azure.close())
    asyncio.run(on_laptop.close())


async def test_replace_keeps_the_previous_mapping_and_is_conditional(store):
    old = await store.insert("dev|moved", "8:acs:a_1", NOW, resource="a.communication.azure.com")
    assert old.acs_resource == "a.communication.azure.com"
    current = await store.get("dev|moved")
    later = NOW + timedelta(days=1)
    replaced = await store.replace(current, "8:acs:b_1", later, resource="b.communication.azure.com")
    fetched = await store.get("dev|moved")
    assert fetched == replaced
    assert (fetched.acs_user_id, fetched.acs_resource, fetched.created_at) == ("8:acs:b_1", "b.communication.azure.com", later)
    assert (fetched.previous_acs_user_id, fetched.previous_acs_resource, fetched.replaced_at) == (
        "8:acs:a_1",
        "a.communication.azure.com",
        later,
    )
    with pytest.raises(IdentityConflict) as caught:  # the row changed since `current` was read
        await store.replace(current, "8:acs:b_2", later, resource="b.communication.azure.com")
    assert caught.value.existing.acs_user_id == "8:acs:b_1"
    await store.delete("dev|moved")
    inserted = await store.replace(fetched, "8:acs:b_3", later, resource="b.communication.azure.com")  # gone: inserted
    assert (await store.get("dev|moved")).acs_user_id == inserted.acs_user_id == "8:acs:b_3"


async def test_the_repair_pass_heals_the_reverse_index_step_by_step(store):
    for n in range(5):
        await store.insert(f"dev|r{n}", f"8:acs:r{n}", NOW)
    await store.forget_index("8:acs:r3")  # a mapping written before the index existed
    await store._index("dev|gone", "8:acs:dangling", NOW)  # a crash between the index and the mapping write
    assert await store.user_key_for("8:acs:r3") is None and await store.user_key_for("8:acs:dangling") == "dev|gone"
    cursor, fixed, steps = None, 0, 0
    while True:  # two rows of each kind per step, as the sweep does with 200
        cursor, step_fixed = await store.repair_index(cursor, 2)
        fixed, steps = fixed + step_fixed, steps + 1
        if cursor == {"index": None, "map": None} or steps > 10:
            break
    assert fixed == 2 and steps >= 3
    assert await store.user_key_for("8:acs:r3") == "dev|r3" and await store.user_key_for("8:acs:dangling") is None
    assert [r async for r in store.iter_records()] and (await store.repair_index(None, 100))[1] == 0  # nothing left
