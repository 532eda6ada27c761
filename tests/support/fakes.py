"""In-memory fakes of the domain's ports (``shared.domain.ports``), for unit tests in milliseconds.

They keep the contracts the adapters keep against ACS and Azure Storage (and that the
integration tests check against the emulator and Azurite): create-if-absent inserts that
raise ``IdentityConflict``, conditional deletes by ETag, merges that never re-create a
deleted row, 404 as ``NotFoundError``, ledger requests that merge per user and action.

Every call yields to the event loop once (``await asyncio.sleep(0)``), as real I/O would,
so concurrent requests interleave and races can be tested. ``fail(operation, error)`` makes
the next calls of an operation raise, to test throttling, outages and lost races.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.domain.caller import orphan_key, user_digest
from shared.domain.clock import utc_now
from shared.domain.errors import ForeignIdentityError, NotFoundError, ServiceError
from shared.domain.models import (
    Action,
    AuditEntry,
    IdentityConflict,
    IdentityRecord,
    IssuedToken,
    RevocationRequest,
    request_row_key,
)
from shared.domain.ports import AcsIdentityService, AuditLog, BatchQueue, IdentityMap, RevocationLedger, SecretStore
from shared.domain.revocation.budget import BudgetStore


class FailurePlan:
    """Errors to raise on the next calls of named operations."""

    def __init__(self) -> None:
        self._planned: dict[str, list[ServiceError]] = defaultdict(list)

    def fail(self, operation: str, error: ServiceError, times: int = 1) -> None:
        self._planned[operation].extend([error] * times)

    async def step(self, operation: str) -> None:
        """Yield once (as I/O would), then raise the next planned error for ``operation``, if any."""
        await asyncio.sleep(0)
        if self._planned[operation]:
            raise self._planned[operation].pop(0)


@dataclass
class FakeIdentity:
    """One ACS identity: tokens minted before the last revocation are dead."""

    id: str
    generation: int = 0
    deleted: bool = False


class FakeAcs(FailurePlan):
    """ACS Identity in memory (:class:`shared.domain.ports.AcsIdentityService`)."""

    def __init__(self, clock: Any = utc_now, resource: str = "fake") -> None:
        super().__init__()
        #: identities are 8:acs:<resource>_<n>; another resource's ids get ForeignIdentityError, as ACS's 401
        self.resource = resource
        self.identities: dict[str, FakeIdentity] = {}
        self.calls: list[tuple[str, str]] = []  # (operation, identity id)
        self._clock = clock
        self._ids = itertools.count(1)
        self._tokens: dict[str, tuple[str, int]] = {}  # token -> (identity id, generation)

    def _mint(self, identity: FakeIdentity, minutes: int | None) -> IssuedToken:
        token = f"token-{identity.id}-{next(self._ids)}"
        self._tokens[token] = (identity.id, identity.generation)
        return IssuedToken(token, self._clock() + timedelta(minutes=minutes or 1440))

    def _live(self, acs_user_id: str) -> FakeIdentity:
        if acs_user_id.startswith("8:acs:") and not acs_user_id.startswith(f"8:acs:{self.resource}_"):
            raise ForeignIdentityError("The ACS identity belongs to another ACS resource.")
        identity = self.identities.get(acs_user_id)
        if identity is None or identity.deleted:
            raise NotFoundError("The ACS identity does not exist (it may have been deleted).")
        return identity

    def is_valid(self, token: str) -> bool:
        """What a relying service would conclude: not revoked since, identity not deleted."""
        acs_user_id, generation = self._tokens[token]
        identity = self.identities[acs_user_id]
        return not identity.deleted and identity.generation == generation

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)

    async def create_identity_with_token(
        self, scopes: Sequence[str], expires_in_minutes: int | None = None
    ) -> tuple[str, IssuedToken]:
        await self.step("create")
        identity = FakeIdentity(f"8:acs:{self.resource}_{next(self._ids)}")
        self.identities[identity.id] = identity
        self.calls.append(("create", identity.id))
        return identity.id, self._mint(identity, expires_in_minutes)

    async def issue_token(self, acs_user_id: str, scopes: Sequence[str], expires_in_minutes: int | None = None) -> IssuedToken:
        await self.step("issue")
        self.calls.append(("issue", acs_user_id))
        return self._mint(self._live(acs_user_id), expires_in_minutes)

    async def revoke_tokens(self, acs_user_id: str) -> None:
        await self.step("revoke")
        self.calls.append(("revoke", acs_user_id))
        self._live(acs_user_id).generation += 1

    async def delete_identity(self, acs_user_id: str) -> None:
        await self.step("delete")
        self.calls.append(("delete", acs_user_id))
        self._live(acs_user_id).deleted = True

    async def exchange_teams_token(self, teams_token: str, client_id: str, user_object_id: str) -> IssuedToken:
        await self.step("teams")
        identity = self.identities.setdefault(f"8:orgid:{user_object_id}", FakeIdentity(f"8:orgid:{user_object_id}"))
        self.calls.append(("teams", identity.id))
        return self._mint(identity, 60)

    async def close(self) -> None:
        return None


class FakeIdentityMap(FailurePlan):
    """The identity map in memory (:class:`shared.domain.ports.IdentityMap`), with ETags."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, IdentityRecord] = {}  # user key -> record
        self.index: dict[str, str] = {}  # ACS id -> user key (the reverse index)
        self.calls: Counter[str] = Counter()
        self._etags = itertools.count(1)

    def _stamp(self, record: IdentityRecord) -> IdentityRecord:
        stamped = replace(record, etag=f"etag-{next(self._etags)}")
        self.rows[record.user_key] = stamped
        return stamped

    def put(self, record: IdentityRecord) -> IdentityRecord:
        """Seed a row directly (test set-up)."""
        return self._stamp(record)

    async def get(self, user_key: str) -> IdentityRecord | None:
        self.calls["get"] += 1
        await self.step("get")
        return self.rows.get(user_key)

    async def get_by_row_key(self, row_key: str) -> IdentityRecord | None:
        self.calls["get"] += 1
        await self.step("get")
        return next((record for key, record in self.rows.items() if user_digest(key) == row_key), None)

    async def insert(self, user_key: str, acs_user_id: str, now: datetime, *, resource: str | None = None) -> IdentityRecord:
        self.calls["insert"] += 1
        await self.step("insert")
        self.index[acs_user_id] = user_key  # written before the mapping, as the adapter does
        if user_key in self.rows:
            if self.rows[user_key].acs_user_id != acs_user_id:
                self.index.pop(acs_user_id, None)
            raise IdentityConflict(self.rows[user_key])
        return self._stamp(IdentityRecord(user_key, acs_user_id, now, now, None, acs_resource=resource))

    async def replace(self, previous: IdentityRecord, acs_user_id: str, now: datetime, *, resource: str) -> IdentityRecord:
        self.calls["replace"] += 1
        await self.step("replace")
        current = self.rows.get(previous.user_key)
        if current is None:
            return await self.insert(previous.user_key, acs_user_id, now, resource=resource)
        self.index[acs_user_id] = previous.user_key
        if current.etag != previous.etag:
            raise IdentityConflict(current)
        return self._stamp(previous.replaced_by(acs_user_id, resource, now))

    async def _merge(self, user_key: str, **changes: datetime) -> None:
        record = self.rows.get(user_key)
        if record is not None:  # a merge never re-creates a deleted row
            self._stamp(replace(record, **changes))

    async def record_issued(self, user_key: str, when: datetime) -> None:
        self.calls["record_issued"] += 1
        await self.step("record_issued")
        await self._merge(user_key, last_issued_at=when)

    async def record_revoked(self, user_key: str, when: datetime) -> None:
        self.calls["record_revoked"] += 1
        await self.step("record_revoked")
        await self._merge(user_key, last_revoked_at=when)

    async def delete(self, user_key: str, *, etag: str | None = None, acs_user_id: str | None = None) -> bool:
        self.calls["delete"] += 1
        await self.step("delete")
        current = self.rows.get(user_key)
        if current is not None and etag is not None and current.etag != etag:
            return False
        self.rows.pop(user_key, None)
        if acs_user_id is not None:
            self.index.pop(acs_user_id, None)
        return True

    async def user_key_for(self, acs_user_id: str) -> str | None:
        await self.step("user_key_for")
        return self.index.get(acs_user_id)

    async def forget_index(self, acs_user_id: str) -> None:
        await self.step("forget_index")
        self.index.pop(acs_user_id, None)

    async def repair_index(self, cursor: Mapping[str, Any] | None, limit: int) -> tuple[dict[str, Any], int]:
        await self.step("repair_index")
        fixed = 0
        for acs_user_id, key in list(self.index.items()):
            record = self.rows.get(key)
            if record is None or acs_user_id not in (record.acs_user_id, record.previous_acs_user_id):
                del self.index[acs_user_id]
                fixed += 1
        for record in self.rows.values():
            if record.acs_user_id not in self.index:
                self.index[record.acs_user_id] = record.user_key
                fixed += 1
        return {}, fixed

    async def iter_records(
        self, *, issued_since: datetime | None = None, issued_before: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[IdentityRecord]:
        await self.step("iter_records")
        for record in list(self.rows.values()):
            issued = record.last_issued_at
            if issued_since is not None and (issued is None or issued < issued_since):
                continue
            if issued_before is not None and (issued is None or issued >= issued_before):
                continue
            yield record

    async def close(self) -> None:
        return None


class FakeLedger(FailurePlan):
    """The revocation ledger in memory (:class:`shared.domain.ports.RevocationLedger`)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[str, RevocationRequest] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.campaign_docs: dict[str, dict[str, Any]] = {}
        self._etags = itertools.count(1)

    def _store(self, request: RevocationRequest) -> RevocationRequest:
        stored = replace(request, etag=f"etag-{next(self._etags)}")
        self.requests[request.row_key] = stored
        return stored

    async def record(
        self, action: Action, user_key: str, *, reason: str, source: str, now: datetime, acs_user_id: str | None = None
    ) -> RevocationRequest:
        await self.step("record")
        row_key = request_row_key(action, user_key)
        previous = self.requests.get(row_key)
        if previous is not None and previous.acs_user_id and acs_user_id and previous.acs_user_id != acs_user_id:
            # as the Table ledger: a pending request for another identity is set aside as that identity's own
            aside_key = orphan_key(previous.acs_user_id)
            self._store(replace(previous, row_key=request_row_key(action, aside_key), user_key=aside_key, not_before=now))
        return self._store(
            RevocationRequest(
                row_key=row_key,
                action=action,
                user_key=user_key,
                acs_user_id=acs_user_id or (previous.acs_user_id if previous else None),
                reason=reason[:200],
                source=source,
                requested_at=now,
                not_before=now,
                attempts=previous.attempts if previous else 0,
                etag=None,
            )
        )

    async def get(self, row_key: str) -> RevocationRequest | None:
        await self.step("get")
        return self.requests.get(row_key)

    async def complete(self, request: RevocationRequest) -> bool:
        await self.step("complete")
        current = self.requests.get(request.row_key)
        if current is not None and request.etag is not None and current.etag != request.etag:
            return False
        self.requests.pop(request.row_key, None)
        return True

    async def postpone(self, request: RevocationRequest, until: datetime, error_code: str | None = None) -> None:
        await self.step("postpone")
        current = self.requests.get(request.row_key)
        if current is None or (request.etag is not None and current.etag != request.etag):
            return
        attempts = current.attempts + 1 if error_code is not None else current.attempts
        self._store(replace(current, not_before=until, attempts=attempts))

    async def lease(self, row_keys: Sequence[str], until: datetime) -> None:
        await self.step("lease")
        for row_key in row_keys:
            if row_key in self.requests:
                self._store(replace(self.requests[row_key], not_before=until))

    async def due(self, now: datetime, page_size: int = 500) -> AsyncIterator[RevocationRequest]:
        await self.step("due")
        for request in list(self.requests.values()):
            if request.not_before <= now:
                yield request

    async def count_pending(self, cap: int = 10_000) -> tuple[int, bool]:
        count = len(self.requests)
        return min(count, cap), count >= cap

    async def save_status(self, name: str, document: Mapping[str, Any]) -> None:
        await self.step("save_status")
        self.status[name] = dict(document)

    async def load_status(self, name: str) -> dict[str, Any] | None:
        return self.status.get(name)

    async def create_campaign(self, campaign_id: str, document: Mapping[str, Any]) -> None:
        await self.step("campaign")
        self.campaign_docs[campaign_id] = dict(document)

    async def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        await self.step("campaign")
        document = self.campaign_docs.get(campaign_id)
        return dict(document) if document is not None else None

    async def campaigns(self) -> list[dict[str, Any]]:
        await self.step("campaign")
        return [dict(document) for document in self.campaign_docs.values()]

    async def update_campaign(
        self, campaign_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        await self.step("campaign")
        current = self.campaign_docs.get(campaign_id)
        if current is None:
            return None
        changed = change(dict(current))
        if changed is None:
            return dict(current)
        self.campaign_docs[campaign_id] = changed
        return dict(changed)

    async def close(self) -> None:
        return None


@dataclass
class FakeQueue:
    """The revocation queue in memory (:class:`shared.domain.ports.BatchQueue`): (message text, delay)."""

    messages: list[tuple[str, float]] = field(default_factory=list)
    poison: int = 0

    async def send(self, message: str, delay_seconds: float) -> None:
        await asyncio.sleep(0)
        self.messages.append((message, delay_seconds))

    async def poison_count(self) -> int:
        return self.poison

    async def close(self) -> None:
        return None


class FakeTime:
    """A monotonic clock and ``sleep`` that advance together, so waits cost no real time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class FakeSecrets:
    """The secret store in memory (:class:`shared.domain.ports.SecretStore`): first writer wins."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    async def get_or_create(self, name: str, new_value: str) -> str:
        await asyncio.sleep(0)
        if name not in self.values:
            self.values[name] = new_value
            self.writes += 1
        return self.values[name]

    async def close(self) -> None:
        return None


class FakeAudit:
    """The audit trail in memory (:class:`shared.domain.ports.AuditLog`)."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        await asyncio.sleep(0)
        self.entries.append(entry)

    async def history(self, user_ref: str, limit: int = 100) -> AsyncIterator[AuditEntry]:
        mine = [entry for entry in self.entries if entry.user_ref == user_ref]
        for entry in sorted(mine, key=lambda e: e.at, reverse=True)[:limit]:
            yield entry

    async def prune(self, before: datetime, limit: int = 1000) -> int:
        old = [entry for entry in self.entries if entry.at < before][:limit]
        self.entries = [entry for entry in self.entries if entry not in old]
        return len(old)

    async def close(self) -> None:
        return None


def _fakes_implement_the_ports() -> None:
    """Never called: mypy checks here that every fake keeps its port's contract."""
    _acs: AcsIdentityService = FakeAcs()
    _identities: IdentityMap = FakeIdentityMap()
    _ledger: RevocationLedger = FakeLedger()
    _queue: BatchQueue = FakeQueue()
    _secrets: SecretStore = FakeSecrets()
    _audit: AuditLog = FakeAudit()
    _budget: BudgetStore = FakeBudgetStore()


class FakeBudgetStore:
    """The fleet's budget slots in memory (:class:`shared.domain.revocation.budget.BudgetStore`)."""

    def __init__(self) -> None:
        self.claimed: set[tuple[str, int, int]] = set()
        self.claims = 0

    async def claim(self, operation: str, window: int, slot: int) -> bool:
        await asyncio.sleep(0)
        self.claims += 1
        if (operation, window, slot) in self.claimed:
            return False
        self.claimed.add((operation, window, slot))
        return True

    async def prune(self, operation: str, before_window: int) -> int:
        old = {key for key in self.claimed if key[0] == operation and key[1] < before_window}
        self.claimed -= old
        return len(old)
