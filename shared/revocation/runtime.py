"""The sweep's clients, created once per worker process from app settings.

The sweep gets its own ACS client with azure-core retries off: it handles 429
and 503 itself (pausing every worker for ``Retry-After``), where the user-facing
client retries briefly because a frontend is waiting. The pacers are per worker,
shared by timer runs and queue batches running in it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from shared import settings as app_settings
from shared.acs import AcsIdentityService, create_client
from shared.identity_store import IdentityStore, create_storage_credential, create_table_client, get_identity_store
from shared.revocation.fanout import QueueFanout
from shared.revocation.ledger import RevocationLedger
from shared.revocation.pacing import RatePacer
from shared.revocation.sweep import Sweeper, utc_now
from shared.revocation.work import ItemProcessor
from shared.settings import RevocationSettings

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

QUEUE_OPTIONS = {"retry_total": 2, "connection_timeout": 3, "read_timeout": 10}

_ledger: RevocationLedger | None = None
_fanout: QueueFanout | None = None
_sweeper: Sweeper | None = None
_sweep_acs: AcsIdentityService | None = None


def get_ledger() -> RevocationLedger:
    global _ledger
    if _ledger is None:
        storage = app_settings.storage_settings()
        table_settings = dataclasses.replace(storage, table_name=app_settings.revocation_settings().table_name)
        table, credential = create_table_client(table_settings, os.environ)
        _ledger = RevocationLedger(table, credential)
    return _ledger


def _queue_clients(name: str) -> tuple[QueueClient, QueueClient]:
    from azure.storage.queue.aio import QueueClient  # only the sweep needs it: keep it off the HTTP cold start

    storage = app_settings.storage_settings()
    if storage.connection_string:
        return (
            QueueClient.from_connection_string(storage.connection_string, name, **QUEUE_OPTIONS),
            QueueClient.from_connection_string(storage.connection_string, f"{name}-poison", **QUEUE_OPTIONS),
        )
    if storage.queue_endpoint is None:
        raise app_settings.SettingsError(
            "AzureWebJobsStorage__queueServiceUri", "is required for the revocation queue when storage uses a managed identity"
        )
    credential = create_storage_credential(storage, os.environ)
    return (
        QueueClient(storage.queue_endpoint, name, credential=credential, **QUEUE_OPTIONS),
        QueueClient(storage.queue_endpoint, f"{name}-poison", credential=credential, **QUEUE_OPTIONS),
    )


def get_fanout() -> QueueFanout:
    global _fanout
    if _fanout is None:
        _fanout = QueueFanout(*_queue_clients(app_settings.revocation_settings().queue_name))
    return _fanout


def build_sweeper(
    acs_service: AcsIdentityService,
    store: IdentityStore,
    ledger: RevocationLedger,
    fanout: QueueFanout | None,
    settings: RevocationSettings,
    max_token_minutes: int,
    clock: Callable[[], datetime] = utc_now,
) -> Sweeper:
    """A sweeper over given clients: one pacer per ACS operation, burst at most one second's worth."""
    burst = max(1, min(settings.concurrency, settings.rate_per_30s // 30))
    processor = ItemProcessor(
        acs_service,
        store,
        ledger,
        revoke_pacer=RatePacer(settings.rate_per_second, burst),
        delete_pacer=RatePacer(settings.rate_per_second, burst),
        clock=clock,
    )
    return Sweeper(processor, store, ledger, fanout, settings, max_token_minutes, clock=clock)


def get_sweeper() -> Sweeper:
    """The worker's sweeper (ledger, queue, identity map, its own ACS client and pacers)."""
    global _sweeper, _sweep_acs
    if _sweeper is None:
        client, credential = create_client(app_settings.acs_settings(), os.environ, retry_total=0)
        _sweep_acs = AcsIdentityService(client, credential)
        _sweeper = build_sweeper(
            _sweep_acs, get_identity_store(), get_ledger(), get_fanout(),
            app_settings.revocation_settings(), app_settings.token_policy().max_expiry_minutes,
        )
    return _sweeper


async def close_revocation() -> None:
    """Release the sweep's clients (tests, scripts)."""
    global _ledger, _fanout, _sweeper, _sweep_acs
    ledger, fanout, acs = _ledger, _fanout, _sweep_acs
    _ledger = _fanout = _sweeper = _sweep_acs = None
    for closable in (ledger, fanout, acs):
        if closable is not None:
            await closable.close()

