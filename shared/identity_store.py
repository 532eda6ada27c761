"""The identity map: one ACS identity per app user, durable in Azure Table storage.

A user keeps the same ``communicationUserId`` across sessions and devices
(chat threads depend on it), so the mapping must outlive any worker.

Entity design (table ``IDENTITY_TABLE_NAME``):

* ``RowKey`` = SHA-256 hex of the user key (provider + user id). Table keys
  forbid ``/ \\ # ?`` and control characters, and hashing keeps raw user ids out
  of keys. ``PartitionKey`` = its first two hex digits: 256 partitions spread
  load, and every lookup is one point read.
* ``UserKey`` (the raw key, for support and erasure), ``AcsUserId``,
  ``CreatedAt``, ``LastIssuedAt``, ``LastRevokedAt`` (UTC ``Edm.DateTime``).

The revocation sweep reads the table once per run with a server-side filter on
``LastIssuedAt`` (identities that may hold live tokens), each row once, page by
page; nothing else needs a scan.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared import settings as app_settings
from shared.errors import UnavailableError
from shared.settings import StorageSettings

logger = logging.getLogger(__name__)

#: An outage should surface in seconds (as 503 + Retry-After), not after minutes of retries.
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}
UNAVAILABLE_RETRY_AFTER = 5


@dataclass(frozen=True)
class IdentityRecord:
    user_key: str
    acs_user_id: str
    created_at: datetime
    last_issued_at: datetime | None
    last_revoked_at: datetime | None
    #: the entity's ETag when read (for conditional deletes); None when built locally
    etag: str | None = field(default=None, compare=False)

    @property
    def row_key(self) -> str:
        return entity_keys(self.user_key)[1]

    def has_unrevoked_tokens_since(self, moment: datetime) -> bool:
        """True if a token was issued at or after ``moment`` and not revoked since."""
        if self.last_issued_at is None or self.last_issued_at < moment:
            return False
        return self.last_revoked_at is None or self.last_revoked_at < self.last_issued_at


class IdentityConflict(Exception):
    """An insert lost a race: another request mapped this user first."""

    def __init__(self, existing: IdentityRecord) -> None:
        super().__init__("identity already mapped")
        self.existing = existing


def entity_keys(user_key: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) for a user key."""
    digest = hashlib.sha256(user_key.encode("utf-8")).hexdigest()
    return digest[:2], digest


def keys_for_row(row_key: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) from a RowKey (the partition is its first two hex digits)."""
    return row_key[:2], row_key


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _record(entity: Mapping[str, Any]) -> IdentityRecord:
    return IdentityRecord(
        user_key=entity["UserKey"],
        acs_user_id=entity["AcsUserId"],
        created_at=_utc(entity["CreatedAt"]),  # type: ignore[arg-type]
        last_issued_at=_utc(entity.get("LastIssuedAt")),
        last_revoked_at=_utc(entity.get("LastRevokedAt")),
        etag=getattr(entity, "metadata", {}).get("etag"),
    )


def _unavailable(error: Exception) -> UnavailableError:
    retry_after = UNAVAILABLE_RETRY_AFTER
    response = getattr(error, "response", None)
    if response is not None:
        try:
            retry_after = int(response.headers.get("Retry-After", retry_after))
        except (TypeError, ValueError):
            pass
    logger.warning("identity storage failed: %s", type(error).__name__)
    return UnavailableError("Identity storage is unavailable; retry later.", retry_after=retry_after)


def create_storage_credential(settings: StorageSettings, env: Mapping[str, str]) -> AsyncTokenCredential:
    """Managed identity in Azure (user-assigned when a client id is set), else DefaultAzureCredential."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if app_settings.running_in_azure(env) or env.get("IDENTITY_ENDPOINT"):
        if settings.managed_identity_client_id:
            return ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
        return ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)


def create_table_client(settings: StorageSettings, env: Mapping[str, str]) -> tuple[TableClient, AsyncTokenCredential | None]:
    if settings.connection_string:
        return TableClient.from_connection_string(settings.connection_string, settings.table_name, **CLIENT_OPTIONS), None
    assert settings.table_endpoint is not None
    credential = create_storage_credential(settings, env)
    return TableClient(settings.table_endpoint, settings.table_name, credential=credential, **CLIENT_OPTIONS), credential


class IdentityStore:
    def __init__(self, table: TableClient, credential: AsyncTokenCredential | None = None) -> None:
        self._table = table
        self._credential = credential
        self._table_ready = False
        self._table_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: StorageSettings, env: Mapping[str, str] | None = None) -> IdentityStore:
        table, credential = create_table_client(settings, os.environ if env is None else env)
        return cls(table, credential)

    async def _ensure_table(self) -> None:
        """Create the table once per process (not per call)."""
        if self._table_ready:
            return
        async with self._table_lock:
            if self._table_ready:
                return
            try:
                await self._table.create_table()
            except ResourceExistsError:
                pass
            self._table_ready = True

    async def get(self, user_key: str) -> IdentityRecord | None:
        return await self._get_entity(*entity_keys(user_key))

    async def get_by_row_key(self, row_key: str) -> IdentityRecord | None:
        """The record for a RowKey (what the revocation sweep passes around instead of user ids)."""
        if len(row_key) != 64 or any(c not in "0123456789abcdef" for c in row_key):
            return None
        return await self._get_entity(*keys_for_row(row_key))

    async def _get_entity(self, partition: str, row: str) -> IdentityRecord | None:
        try:
            await self._ensure_table()
            entity = await self._table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise _unavailable(error) from None
        return _record(entity)

    async def insert(self, user_key: str, acs_user_id: str, now: datetime) -> IdentityRecord:
        """Create-if-absent; IdentityConflict carries the winner's record when we lost a race."""
        partition, row = entity_keys(user_key)
        entity = {
            "PartitionKey": partition,
            "RowKey": row,
            "UserKey": user_key,
            "AcsUserId": acs_user_id,
            "CreatedAt": now,
            "LastIssuedAt": now,
        }
        try:
            await self._ensure_table()
            await self._table.create_entity(entity)
        except ResourceExistsError:
            existing = await self.get(user_key)
            if existing is None:  # deleted between our insert and read: try once more
                return await self.insert(user_key, acs_user_id, now)
            raise IdentityConflict(existing) from None
        except AzureError as error:
            raise _unavailable(error) from None
        return IdentityRecord(user_key, acs_user_id, now, now, None)

    async def _merge(self, user_key: str, fields: dict[str, Any]) -> None:
        partition, row = entity_keys(user_key)
        try:
            await self._ensure_table()
            await self._table.update_entity(
                {"PartitionKey": partition, "RowKey": row, **fields},
                mode=UpdateMode.MERGE,  # sends If-Match: *, so a deleted entity is not re-created
            )
        except ResourceNotFoundError:
            pass  # deleted meanwhile: nothing to record
        except AzureError as error:
            raise _unavailable(error) from None

    async def record_issued(self, user_key: str, when: datetime) -> None:
        """One merge write, no read."""
        await self._merge(user_key, {"LastIssuedAt": when})

    async def record_revoked(self, user_key: str, when: datetime) -> None:
        await self._merge(user_key, {"LastRevokedAt": when})

    async def delete(self, user_key: str, *, etag: str | None = None) -> bool:
        """One round trip; idempotent (the SDK treats a missing entity as deleted).

        With ``etag``, delete only if the entity is unchanged since it was read; False if it changed.
        """
        partition, row = entity_keys(user_key)
        conditions: dict[str, Any] = {} if etag is None else {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            await self._ensure_table()
            await self._table.delete_entity(partition, row, **conditions)
        except ResourceModifiedError:
            return False
        except AzureError as error:
            raise _unavailable(error) from None
        return True

    async def iter_records(
        self, *, issued_since: datetime | None = None, issued_before: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[IdentityRecord]:
        """One pass over the table (server-side filter on LastIssuedAt), each row once, page by page."""
        clauses, parameters = [], {}
        if issued_since is not None:
            clauses.append("LastIssuedAt ge @since")
            parameters["since"] = issued_since
        if issued_before is not None:
            clauses.append("LastIssuedAt lt @before")
            parameters["before"] = issued_before
        try:
            await self._ensure_table()
            if not clauses:
                pages = self._table.list_entities(results_per_page=page_size)
            else:
                pages = self._table.query_entities(" and ".join(clauses), parameters=parameters, results_per_page=page_size)
            async for entity in pages:
                yield _record(entity)
        except AzureError as error:
            raise _unavailable(error) from None

    async def ping(self) -> None:
        """Readiness: the table is reachable."""
        try:
            await self._ensure_table()
            async for _ in self._table.query_entities("PartitionKey eq '--'", results_per_page=1):
                break
        except AzureError as error:
            raise _unavailable(error) from None

    async def close(self) -> None:
        await self._table.close()
        if self._credential is not None:
            await self._credential.close()


_store: IdentityStore | None = None


def get_identity_store() -> IdentityStore:
    """The worker's one table client, created on first use from app settings."""
    global _store
    if _store is None:
        _store = IdentityStore.from_settings(app_settings.storage_settings())
    return _store


async def close_identity_store() -> None:
    """Release the worker's table client; the next call builds a new one."""
    global _store
    store, _store = _store, None
    if store is not None:
        await store.close()
