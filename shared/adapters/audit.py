"""The audit trail in Azure Table storage: append-only, one partition per user reference.

Entity design (``AUDIT_TABLE_NAME``): ``PartitionKey`` = the user's keyed reference (32 hex digits,
never the user id), ``RowKey`` = inverted milliseconds since the epoch plus a random suffix, so a
user's history reads newest first in one partition query. Fields: ``Event``, ``Source``,
``Reason``, ``At``, ``AcsUserId``. Entries are only ever added, and deleted by the sweep once older
than ``AUDIT_RETENTION_DAYS``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.adapters.storage import TableAdapter, table_client
from shared.domain.clock import as_utc
from shared.domain.models import AuditEntry
from shared.settings import StorageSettings

#: RowKeys count down from here, so newer entries sort first
_INVERSION = 10**13


def _row_key(at: datetime) -> str:
    return f"{_INVERSION - int(as_utc(at).timestamp() * 1000):013d}-{uuid.uuid4().hex[:8]}"


def _entry(entity: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        user_ref=entity["PartitionKey"],
        event=entity.get("Event", ""),
        source=entity.get("Source", ""),
        reason=entity.get("Reason", ""),
        at=as_utc(entity["At"]),
        acs_user_id=entity.get("AcsUserId", ""),
    )


class TableAuditLog(TableAdapter):
    """:class:`shared.domain.ports.AuditLog` on one Azure Table."""

    what = "audit"

    @classmethod
    def from_settings(cls, settings: StorageSettings, table_name: str, env: Mapping[str, str]) -> TableAuditLog:
        return cls(*table_client(settings, table_name, env))

    async def append(self, entry: AuditEntry) -> None:
        entity = {
            "PartitionKey": entry.user_ref,
            "RowKey": _row_key(entry.at),
            "Event": entry.event,
            "Source": entry.source,
            "Reason": entry.reason,
            "At": entry.at,
            "AcsUserId": entry.acs_user_id,
        }
        async with self._reaching():
            await self._table.create_entity(entity)

    async def history(self, user_ref: str, limit: int = 100) -> AsyncIterator[AuditEntry]:
        count = 0
        async with self._reaching():
            pages = self._table.query_entities("PartitionKey eq @ref", parameters={"ref": user_ref}, results_per_page=limit)
            async for entity in pages:
                yield _entry(entity)
                count += 1
                if count >= limit:
                    return

    async def prune(self, before: datetime, limit: int = 1000) -> int:
        deleted = 0
        async with self._reaching():
            pages = self._table.query_entities(
                "At lt @before", parameters={"before": before}, select=["PartitionKey", "RowKey"], results_per_page=limit
            )
            async for entity in pages:
                try:
                    await self._table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                except ResourceNotFoundError:
                    pass
                deleted += 1
                if deleted >= limit:
                    break
        return deleted
