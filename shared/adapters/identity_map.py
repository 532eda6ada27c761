"""The identity map in Azure Table storage: one ACS identity per app user, durable.

A user keeps the same ``communicationUserId`` across sessions and devices
(chat threads depend on it), so the mapping must outlive any worker.

Entity design (table ``IDENTITY_TABLE_NAME``):

* ``RowKey`` = SHA-256 hex of the user key (provider + user id). Table keys
  forbid ``/ \\ # ?`` and control characters, and hashing keeps raw user ids out
  of keys. ``PartitionKey`` = its first two hex digits: 256 partitions spread
  load, and every lookup is one point read.
* ``UserKey`` (the raw key, for support and erasure), ``AcsUserId``, ``AcsResource``
  (the ACS resource's host; absent on rows written before it was recorded),
  ``CreatedAt``, ``LastIssuedAt``, ``LastRevokedAt`` (UTC ``Edm.DateTime``), and after a
  mapping of another ACS resource was replaced, ``PreviousAcsUserId``,
  ``PreviousAcsResource``, ``ReplacedAt`` (kept so an operator can see it).

A reverse index (ACS id -> user) lives in the same table: ``PartitionKey`` = ``i`` plus
the first two hex digits of SHA-256(ACS id), ``RowKey`` = that digest, fields ``AcsUserId``,
``UserKey``, ``CreatedAt``. It is written before the mapping and deleted after it, so the only
way the two can disagree after a crash is an index entry whose mapping is gone or points
elsewhere: lookups check the map, and report and drop such entries.

The revocation sweep reads the table once per run with a server-side filter on
``LastIssuedAt`` (identities that may hold live tokens; index rows have none), each row
once, page by page; nothing else needs a scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.storage import TableAdapter, table_client
from shared.domain.caller import user_digest
from shared.domain.clock import as_utc
from shared.domain.errors import UnavailableError
from shared.domain.models import IdentityConflict, IdentityRecord
from shared.settings import StorageSettings


def entity_keys(user_key: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) for a user key."""
    return keys_for_row(user_digest(user_key))


def keys_for_row(row_key: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) from a RowKey (the partition is its first two hex digits)."""
    return row_key[:2], row_key


def index_keys(acs_user_id: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of an ACS identity's reverse-index entry."""
    digest = hashlib.sha256(acs_user_id.encode("utf-8")).hexdigest()
    return f"i{digest[:2]}", digest


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _record(entity: Mapping[str, Any]) -> IdentityRecord:
    return IdentityRecord(
        user_key=entity["UserKey"],
        acs_user_id=entity["AcsUserId"],
        created_at=as_utc(entity["CreatedAt"]),
        last_issued_at=_optional_utc(entity.get("LastIssuedAt")),
        last_revoked_at=_optional_utc(entity.get("LastRevokedAt")),
        etag=getattr(entity, "metadata", {}).get("etag"),
        acs_resource=entity.get("AcsResource") or None,
        previous_acs_user_id=entity.get("PreviousAcsUserId") or None,
        previous_acs_resource=entity.get("PreviousAcsResource") or None,
        replaced_at=_optional_utc(entity.get("ReplacedAt")),
    )


def new_entity(
    user_key: str, acs_user_id: str, now: datetime, resource: str | None, *, last_issued_at: datetime | None = None
) -> dict[str, Any]:
    """The row of a new mapping (public so the 100k bench seeds rows exactly like these)."""
    partition, row = entity_keys(user_key)
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": row,
        "UserKey": user_key,
        "AcsUserId": acs_user_id,
        "CreatedAt": now,
        "LastIssuedAt": last_issued_at or now,
    }
    if resource:
        entity["AcsResource"] = resource
    return entity


class TableIdentityMap(TableAdapter):
    """:class:`shared.domain.ports.IdentityMap` on one Azure Table."""

    what = "identity"

    @classmethod
    def from_settings(cls, settings: StorageSettings, env: Mapping[str, str]) -> TableIdentityMap:
        return cls(*table_client(settings, settings.table_name, env))

    async def get(self, user_key: str) -> IdentityRecord | None:
        return await self._get_entity(*entity_keys(user_key))

    async def get_by_row_key(self, row_key: str) -> IdentityRecord | None:
        """The record for a RowKey (what the revocation sweep passes around instead of user ids)."""
        if len(row_key) != 64 or any(c not in "0123456789abcdef" for c in row_key):
            return None
        return await self._get_entity(*keys_for_row(row_key))

    async def _get_entity(self, partition: str, row: str) -> IdentityRecord | None:
        entity = await self._entity(partition, row)
        return None if entity is None else _record(entity)

    async def insert(self, user_key: str, acs_user_id: str, now: datetime, *, resource: str | None = None) -> IdentityRecord:
        """Create-if-absent; IdentityConflict carries the winner's record when we lost a race."""
        entity = new_entity(user_key, acs_user_id, now, resource)
        await self._index(user_key, acs_user_id, now)
        async with self._reaching():
            try:
                await self._table.create_entity(entity)
            except ResourceExistsError:
                existing = await self.get(user_key)
                if existing is None:  # deleted between our insert and read: try once more
                    return await self.insert(user_key, acs_user_id, now, resource=resource)
                if existing.acs_user_id != acs_user_id:
                    await self._forget_index_quietly(acs_user_id)
                raise IdentityConflict(existing) from None
        return IdentityRecord(user_key, acs_user_id, now, now, None, acs_resource=resource)

    async def _index(self, user_key: str, acs_user_id: str, now: datetime) -> None:
        """The reverse-index entry, written before the mapping it describes."""
        partition, row = index_keys(acs_user_id)
        entity = {"PartitionKey": partition, "RowKey": row, "AcsUserId": acs_user_id, "UserKey": user_key, "CreatedAt": now}
        async with self._reaching():
            await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def user_key_for(self, acs_user_id: str) -> str | None:
        entity = await self._entity(*index_keys(acs_user_id))
        return None if entity is None else str(entity["UserKey"])

    async def forget_index(self, acs_user_id: str) -> None:
        async with self._reaching():
            await self._table.delete_entity(*index_keys(acs_user_id))

    async def repair_index(self, cursor: Mapping[str, Any] | None, limit: int) -> tuple[dict[str, Any], int]:
        """One bounded step of the sweep's repair pass over the reverse index and the map.

        Index entries whose mapping is gone or points elsewhere (a crash between the writes) are
        deleted; mappings without an entry (written before the index existed) get one.
        """
        cursor = dict(cursor or {})
        fixed = 0
        index_rows, cursor["index"] = await self._page("PartitionKey ge 'i' and PartitionKey lt 'j'", cursor.get("index"), limit)
        for entity in index_rows:
            record = await self.get(str(entity.get("UserKey", "")))
            acs_user_id = str(entity.get("AcsUserId", ""))
            if record is None or acs_user_id not in (record.acs_user_id, record.previous_acs_user_id):
                await self.forget_index(acs_user_id)
                fixed += 1
        mappings, cursor["map"] = await self._page("PartitionKey lt 'i'", cursor.get("map"), limit)
        for entity in mappings:
            record = _record(entity)
            if await self.user_key_for(record.acs_user_id) is None:
                await self._index(record.user_key, record.acs_user_id, record.created_at)
                fixed += 1
        return cursor, fixed

    async def _page(self, where: str, after: object, limit: int) -> tuple[list[Mapping[str, Any]], list[str] | None]:
        """Up to ``limit`` rows matching ``where`` after the (PartitionKey, RowKey) ``after``; the next cursor.

        The cursor is None once the end is reached, so the next step starts over.
        """
        parameters: dict[str, Any] = {}
        if isinstance(after, list) and len(after) == 2:
            where += (
                " and ( PartitionKey gt @p or ( PartitionKey eq @p and RowKey gt @r ) )"  # spaces: the SDK reads @r)) as a name
            )
            parameters = {"p": str(after[0]), "r": str(after[1])}
        rows: list[Mapping[str, Any]] = []
        async with self._reaching():
            async for entity in self._table.query_entities(where, parameters=parameters, results_per_page=limit):
                rows.append(entity)
                if len(rows) >= limit:
                    break
        if len(rows) < limit:
            return rows, None  # the end: start over next time
        return rows, [str(rows[-1]["PartitionKey"]), str(rows[-1]["RowKey"])]

    async def _forget_index_quietly(self, acs_user_id: str) -> None:
        """Best effort: a leftover entry is found and dropped by the next lookup that meets it."""
        try:
            await self.forget_index(acs_user_id)
        except UnavailableError:
            pass

    async def replace(self, previous: IdentityRecord, acs_user_id: str, now: datetime, *, resource: str) -> IdentityRecord:
        """Replace a mapping of another ACS resource, conditional on its ETag; the old one stays as Previous*."""
        entity = {
            **new_entity(previous.user_key, acs_user_id, now, resource),
            "PreviousAcsUserId": previous.acs_user_id,
            "PreviousAcsResource": previous.acs_resource or "",
            "ReplacedAt": now,
        }
        await self._index(previous.user_key, acs_user_id, now)  # the old identity's entry stays: "previous"
        async with self._reaching():
            try:
                await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=previous.etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                current = await self.get(previous.user_key)
                if current is None:
                    return await self.insert(previous.user_key, acs_user_id, now, resource=resource)
                raise IdentityConflict(current) from None
        return previous.replaced_by(acs_user_id, resource, now)

    async def _merge(self, user_key: str, fields: dict[str, Any]) -> None:
        partition, row = entity_keys(user_key)
        async with self._reaching():
            try:
                await self._table.update_entity(
                    {"PartitionKey": partition, "RowKey": row, **fields},
                    mode=UpdateMode.MERGE,  # sends If-Match: *, so a deleted entity is not re-created
                )
            except ResourceNotFoundError:
                pass  # deleted meanwhile: nothing to record

    async def record_issued(self, user_key: str, when: datetime) -> None:
        """One merge write, no read."""
        await self._merge(user_key, {"LastIssuedAt": when})

    async def record_revoked(self, user_key: str, when: datetime) -> None:
        await self._merge(user_key, {"LastRevokedAt": when})

    async def delete(self, user_key: str, *, etag: str | None = None, acs_user_id: str | None = None) -> bool:
        """One round trip (two with ``acs_user_id``: its index entry too); idempotent.

        With ``etag``, delete only if the entity is unchanged since it was read; False if it changed.
        """
        partition, row = entity_keys(user_key)
        conditions: dict[str, Any] = {} if etag is None else {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        async with self._reaching():
            try:
                await self._table.delete_entity(partition, row, **conditions)
            except ResourceModifiedError:
                return False
        if acs_user_id is not None:
            await self._forget_index_quietly(acs_user_id)
        return True

    async def iter_records(
        self, *, issued_since: datetime | None = None, issued_before: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[IdentityRecord]:
        """One pass over the table (server-side filter on LastIssuedAt), each row once, page by page."""
        # Mapping rows only: their partitions are two hex digits; the reverse index's start with "i".
        clauses: list[str] = ["PartitionKey lt @index"]
        parameters: dict[str, Any] = {"index": "i"}
        if issued_since is not None:
            clauses.append("LastIssuedAt ge @since")
            parameters["since"] = issued_since
        if issued_before is not None:
            clauses.append("LastIssuedAt lt @before")
            parameters["before"] = issued_before
        async with self._reaching():
            pages = self._table.query_entities(" and ".join(clauses), parameters=parameters, results_per_page=page_size)
            async for entity in pages:
                yield _record(entity)
