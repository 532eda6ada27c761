"""The fleet budget's slots in Table storage (Azurite): create-if-absent claims, and pruning in batches."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables.aio import TableClient

from localdev.azurite import start_azurite
from shared.adapters.ledger import TableBudgetStore
from shared.domain.errors import ThrottledError
from shared.domain.revocation.budget import FleetBudget

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with start_azurite(location=tmp_path_factory.mktemp("azurite")) as process:
        yield process


async def test_a_slot_is_claimed_once_and_old_windows_are_pruned(azurite):
    table = "budget" + uuid.uuid4().hex[:10]
    first = TableBudgetStore(TableClient.from_connection_string(azurite.connection_string, table))
    second = TableBudgetStore(TableClient.from_connection_string(azurite.connection_string, table))
    try:
        assert await first.claim("revoke", 500, 0) is True
        assert await second.claim("revoke", 500, 0) is False  # another instance holds it
        assert await second.claim("revoke", 500, 1) is True
        assert await first.claim("delete", 500, 0) is True  # operations have their own slots
        for window in range(400, 450):
            assert await first.claim("revoke", window, 2)
        assert await first.prune("revoke", 450) == 50  # windows 400..449 (in one batch transaction per 100)
        assert await first.prune("revoke", 501) == 2 and await first.prune("delete", 501) == 1
    finally:
        await first.close()
        await second.close()


async def test_two_instances_share_one_budget_through_azurite(azurite):
    table = "budget" + uuid.uuid4().hex[:10]
    stores = [TableBudgetStore(TableClient.from_connection_string(azurite.connection_string, table)) for _ in range(2)]
    wall = [1_000_000.0]
    budgets = [FleetBudget(store, "revoke", 400, wall=lambda: wall[0]) for store in stores]
    try:
        taken = 0
        for budget in budgets:
            while True:
                try:
                    await budget.try_acquire()
                except ThrottledError:  # this window's share is spent
                    break
                taken += 1
        assert taken == budgets[0].per_window  # together exactly one window's share, not one each
    finally:
        for store in stores:
            await store.close()
