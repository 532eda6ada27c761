"""Durable revocation requests and the sweep's status, in one Azure Table.

A request is written before anything else happens (by an operator through
``POST /api/ops/revocations``, or by the app when a user revokes or deletes), and
removed only after ACS confirmed the work. Entity design (``REVOCATION_TABLE_NAME``):

* requests: ``PartitionKey='request'``, ``RowKey='<action>-<sha256 of the user key>'``, so a
  repeated request for the same user merges into the pending one. A pending request for an
  identity that is no longer the user's (the user deleted it while ACS refused, signed in
  again and deleted the new one) is not overwritten: it is set aside first as a request of
  the same action for that identity alone (the orphan key), so neither is lost. ``NotBefore`` is
  when the request may next be claimed (a lease while a queue batch owns it, or a
  back-off after a transient failure).
* status: ``PartitionKey='status'``: the last timer run's and the last batch's summary,
  and the fan-out checkpoint (until when queue batches own the policy work).

Completing is conditional on the ETag read before the ACS call: if a new request
for the same user arrived meanwhile, the row stays and is processed again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.storage import TableAdapter, table_client
from shared.domain.caller import orphan_key
from shared.domain.clock import as_utc
from shared.domain.errors import UnavailableError
from shared.domain.models import Action, RevocationRequest, request_row_key
from shared.settings import StorageSettings

REQUEST_PARTITION = "request"
STATUS_PARTITION = "status"
CAMPAIGN_PARTITION = "campaign"
#: tries of a read-change-write of a campaign document before giving up (concurrent batches)
UPDATE_ATTEMPTS = 8


def _request(entity: Mapping[str, Any]) -> RevocationRequest:
    return RevocationRequest(
        row_key=entity["RowKey"],
        action=entity["Action"],
        user_key=entity["UserKey"],
        acs_user_id=entity.get("AcsUserId") or None,
        reason=entity.get("Reason", ""),
        source=entity.get("Source", ""),
        requested_at=as_utc(entity["RequestedAt"]),
        not_before=as_utc(entity["NotBefore"]),
        attempts=int(entity.get("Attempts", 0)),
        etag=getattr(entity, "metadata", {}).get("etag"),
    )


class TableRevocationLedger(TableAdapter):
    """:class:`shared.domain.ports.RevocationLedger` on one Azure Table."""

    what = "revocation"

    @classmethod
    def from_settings(cls, settings: StorageSettings, table_name: str, env: Mapping[str, str]) -> TableRevocationLedger:
        return cls(*table_client(settings, table_name, env))

    # ------------------------------------------------------------------ requests

    async def record(
        self, action: Action, user_key: str, *, reason: str, source: str, now: datetime, acs_user_id: str | None = None
    ) -> RevocationRequest:
        """Insert, or merge into the pending request (a repeat for the same user resets its back-off);
        one round trip when nothing is pending."""
        request = RevocationRequest(
            row_key=request_row_key(action, user_key),
            action=action,
            user_key=user_key,
            acs_user_id=acs_user_id,
            reason=reason[:200],
            source=source,
            requested_at=now,
            not_before=now,
            attempts=0,
            etag=None,
        )
        entity: dict[str, Any] = {
            "PartitionKey": REQUEST_PARTITION,
            "RowKey": request.row_key,
            "Action": action,
            "UserKey": user_key,
            "Reason": request.reason,
            "Source": source,
            "RequestedAt": now,
            "NotBefore": now,
        }
        if acs_user_id:
            entity["AcsUserId"] = acs_user_id
        async with self._reaching():
            try:
                metadata = await self._table.create_entity(entity)  # the usual case: nothing pending, one round trip
                return replace(request, etag=(metadata or {}).get("etag"))
            except ResourceExistsError:
                pass
        if acs_user_id:
            await self._set_aside_if_for_another(request.row_key, acs_user_id, now)
        async with self._reaching():
            metadata = await self._table.upsert_entity(entity, mode=UpdateMode.MERGE)
        return replace(request, etag=(metadata or {}).get("etag"))

    async def _set_aside_if_for_another(self, row_key: str, acs_user_id: str, now: datetime) -> None:
        """Keep a pending request for another identity as that identity's own before the merge replaces it."""
        pending = await self._entity(REQUEST_PARTITION, row_key)
        earlier = str(pending.get("AcsUserId") or "") if pending is not None else ""
        if pending is None or not earlier or earlier == acs_user_id:
            return
        aside = {
            **{key: pending[key] for key in ("Action", "Reason", "Source", "RequestedAt") if key in pending},
            "PartitionKey": REQUEST_PARTITION,
            "RowKey": request_row_key(pending["Action"], orphan_key(earlier)),
            "UserKey": orphan_key(earlier),
            "AcsUserId": earlier,
            "NotBefore": now,
        }
        async with self._reaching():
            await self._table.upsert_entity(aside, mode=UpdateMode.MERGE)

    async def get(self, row_key: str) -> RevocationRequest | None:
        entity = await self._entity(REQUEST_PARTITION, row_key)
        return None if entity is None else _request(entity)

    async def complete(self, request: RevocationRequest) -> bool:
        """Remove a request ACS has confirmed; False if it changed meanwhile (it stays pending)."""
        conditions: dict[str, Any] = {}
        if request.etag:
            conditions = {"etag": request.etag, "match_condition": MatchConditions.IfNotModified}
        async with self._reaching():
            try:
                await self._table.delete_entity(REQUEST_PARTITION, request.row_key, **conditions)
            except ResourceModifiedError:
                return False
        return True

    async def postpone(self, request: RevocationRequest, until: datetime, error_code: str | None = None) -> None:
        """Push ``NotBefore`` out (a lease or a back-off); a no-op if the request is gone or changed."""
        fields: dict[str, Any] = {"PartitionKey": REQUEST_PARTITION, "RowKey": request.row_key, "NotBefore": until}
        if error_code is not None:
            fields["Attempts"] = request.attempts + 1
            fields["LastError"] = error_code
        async with self._reaching():
            try:
                await self._table.update_entity(
                    fields,
                    mode=UpdateMode.MERGE,
                    etag=request.etag or "*",
                    match_condition=MatchConditions.IfNotModified if request.etag else MatchConditions.Unconditionally,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                pass

    async def lease(self, row_keys: Sequence[str], until: datetime) -> None:
        """Mark requests as owned by a queue batch until ``until`` (unconditional merge, If-Match *)."""
        async with self._reaching():
            for row_key in row_keys:
                try:
                    await self._table.update_entity(
                        {"PartitionKey": REQUEST_PARTITION, "RowKey": row_key, "NotBefore": until}, mode=UpdateMode.MERGE
                    )
                except ResourceNotFoundError:
                    pass

    async def due(self, now: datetime, page_size: int = 500) -> AsyncIterator[RevocationRequest]:
        """Pending requests whose ``NotBefore`` has passed, oldest pages first, streamed."""
        async with self._reaching():
            pages = self._table.query_entities(
                "PartitionKey eq @pk and NotBefore le @now",
                parameters={"pk": REQUEST_PARTITION, "now": now},
                results_per_page=page_size,
            )
            async for entity in pages:
                yield _request(entity)

    async def count_pending(self, cap: int = 10_000) -> tuple[int, bool]:
        """(pending requests, whether the count hit ``cap``), reading keys only."""
        count = 0
        async with self._reaching():
            pages = self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": REQUEST_PARTITION}, select=["RowKey"], results_per_page=1000
            )
            async for _ in pages:
                count += 1
                if count >= cap:
                    return count, True
        return count, False

    # ------------------------------------------------------------------ status and campaigns: JSON documents

    async def save_status(self, name: str, document: Mapping[str, Any]) -> None:
        async with self._reaching():
            await self._table.upsert_entity(_document_entity(STATUS_PARTITION, name, document), mode=UpdateMode.REPLACE)

    async def load_status(self, name: str) -> dict[str, Any] | None:
        return _document(await self._entity(STATUS_PARTITION, name))

    async def create_campaign(self, campaign_id: str, document: Mapping[str, Any]) -> None:
        async with self._reaching():
            await self._table.create_entity(_document_entity(CAMPAIGN_PARTITION, campaign_id, document))

    async def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        return _document(await self._entity(CAMPAIGN_PARTITION, campaign_id))

    async def campaigns(self) -> list[dict[str, Any]]:
        async with self._reaching():
            pages = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": CAMPAIGN_PARTITION})
            return [document async for entity in pages if (document := _document(entity)) is not None]

    async def update_campaign(
        self, campaign_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read, ``change``, write back if unchanged meanwhile (ETag); retried on a race. None if gone or unchanged."""
        for _ in range(UPDATE_ATTEMPTS):
            entity = await self._entity(CAMPAIGN_PARTITION, campaign_id)
            if entity is None:
                return None
            current = _document(entity)
            changed = change(dict(current)) if current is not None else None
            if changed is None:
                return current
            async with self._reaching():
                try:
                    await self._table.update_entity(
                        _document_entity(CAMPAIGN_PARTITION, campaign_id, changed),
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                except ResourceModifiedError:
                    continue  # another worker updated it first: apply the change to theirs
            return changed
        raise UnavailableError("The campaign kept changing under this update; retry.", retry_after=1)


def _document_entity(partition: str, row: str, document: Mapping[str, Any]) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": row, "Json": json.dumps(document, separators=(",", ":"))}


def _document(entity: Mapping[str, Any] | None) -> dict[str, Any] | None:
    try:
        value = json.loads((entity or {}).get("Json") or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


SECRET_PARTITION = "secret"  # noqa: S105 - the partition's name, not a secret


class TableSecrets(TableAdapter):
    """:class:`shared.domain.ports.SecretStore` in the revocation table (``PartitionKey='secret'``).

    Storage already holds every raw user key (the identity map), so a secret kept beside it protects
    what matters here: the logs and Application Insights, which are read by more people than storage.
    """

    what = "revocation"

    @classmethod
    def from_settings(cls, settings: StorageSettings, table_name: str, env: Mapping[str, str]) -> TableSecrets:
        return cls(*table_client(settings, table_name, env))

    async def get_or_create(self, name: str, new_value: str) -> str:
        async with self._reaching():
            try:
                await self._table.create_entity({"PartitionKey": SECRET_PARTITION, "RowKey": name, "Value": new_value})
            except ResourceExistsError:
                entity = await self._table.get_entity(SECRET_PARTITION, name)
                return str(entity["Value"])
        return new_value


BUDGET_PARTITION = "budget"


class TableBudgetStore(TableAdapter):
    """:class:`shared.domain.revocation.budget.BudgetStore` in the revocation table (``PartitionKey='budget'``).

    A slot is a row ``<operation>-<window>-<slot>``: claiming is inserting it (one round trip; a
    409 means another instance holds it). Old windows' rows are deleted in batches by the sweep.
    """

    what = "budget"

    @classmethod
    def from_settings(cls, settings: StorageSettings, table_name: str, env: Mapping[str, str]) -> TableBudgetStore:
        return cls(*table_client(settings, table_name, env))

    async def claim(self, operation: str, window: int, slot: int) -> bool:
        async with self._reaching():
            try:
                await self._table.create_entity(
                    {"PartitionKey": BUDGET_PARTITION, "RowKey": f"{operation}-{window:012d}-{slot:02d}"}
                )
            except ResourceExistsError:
                return False
        return True

    async def prune(self, operation: str, before_window: int) -> int:
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        parameters = {"pk": BUDGET_PARTITION, "low": f"{operation}-", "high": f"{operation}-{max(0, before_window):012d}"}
        async with self._reaching():
            rows = [
                entity["RowKey"] async for entity in self._table.query_entities(query, parameters=parameters, select=["RowKey"])
            ]
            for start in range(0, len(rows), 100):  # a transaction holds at most 100 operations of one partition
                await self._table.submit_transaction(
                    [("delete", {"PartitionKey": BUDGET_PARTITION, "RowKey": row}) for row in rows[start : start + 100]]
                )
        return len(rows)
