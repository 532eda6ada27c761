"""One unit of sweep work, and how it is carried out idempotently.

Work items name what to do, not how far it got: a ledger request (``request``), an
identity over the maximum session age (``session``) or past the retention period
(``retention``). Processing re-reads the current state first, so an item handed
out twice (a retried queue batch, a timer run after a crash) costs a read, not a
second ACS call, once the first has been recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from shared.acs import AcsIdentityService
from shared.errors import NotFoundError, ServiceError, ThrottledError, UnavailableError
from shared.identity_store import IdentityRecord, IdentityStore
from shared.revocation.ledger import RevocationLedger, RevocationRequest
from shared.revocation.pacing import RatePacer

logger = logging.getLogger(__name__)

Kind = Literal["request", "session", "retention"]
_PREFIX: dict[str, str] = {"request": "r", "session": "s", "retention": "d"}
_KIND_OF = {prefix: kind for kind, prefix in _PREFIX.items()}
#: tries per item within one run when ACS throttles or fails transiently
MAX_ATTEMPTS_PER_RUN = 4
#: a request that failed transiently waits this long before a run claims it again
DEFER_SECONDS = 60


class Outcome(str, Enum):
    REVOKED = "revoked"
    DELETED = "deleted"
    ALREADY_GONE = "alreadyGone"  # ACS answered 404, or there was no identity: nothing left to revoke
    SKIPPED = "skipped"  # no longer due (done by an earlier run, or the user came back)
    DEFERRED = "deferred"  # transient failures: left for a later run, nothing lost
    FAILED = "failed"  # an unexpected error; the item stays for a later run


@dataclass(frozen=True)
class WorkItem:
    kind: Kind
    key: str  # ledger RowKey for requests, identity RowKey (a SHA-256 hex) otherwise
    #: the request as just read by the planner (saves a read); never serialized: a queue batch re-reads it
    request: RevocationRequest | None = field(default=None, compare=False, repr=False)

    def encode(self) -> str:
        return f"{_PREFIX[self.kind]}:{self.key}"

    @classmethod
    def decode(cls, text: str) -> WorkItem:
        prefix, _, key = text.partition(":")
        if prefix not in _KIND_OF or not key or len(key) > 80:
            raise ValueError(f"not a work item: {text[:40]!r}")
        return cls(_KIND_OF[prefix], key)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SweepPolicy:
    """Cut-offs computed once per run from the settings and the run's start time."""

    now: datetime
    #: tokens issued before this have expired anyway (the longest lifetime the app grants)
    live_tokens_since: datetime
    session_cutoff: datetime | None
    retention_cutoff: datetime | None

    @classmethod
    def at(cls, now: datetime, *, max_token_minutes: int, max_session_hours: int, retention_days: int) -> SweepPolicy:
        return cls(
            now=now,
            live_tokens_since=now - timedelta(minutes=max_token_minutes),
            session_cutoff=now - timedelta(hours=max_session_hours) if max_session_hours else None,
            retention_cutoff=now - timedelta(days=retention_days) if retention_days else None,
        )

    def session_due(self, record: IdentityRecord) -> bool:
        """Newest token older than the maximum session age, still alive, and not revoked since."""
        if self.session_cutoff is None or record.last_issued_at is None:
            return False
        return record.last_issued_at < self.session_cutoff and record.has_unrevoked_tokens_since(self.live_tokens_since)

    def retention_due(self, record: IdentityRecord) -> bool:
        if self.retention_cutoff is None:
            return False
        last_seen = record.last_issued_at or record.created_at
        return last_seen < self.retention_cutoff


class ItemProcessor:
    """Carries out work items against ACS, the identity map and the ledger."""

    def __init__(
        self,
        acs: AcsIdentityService,
        store: IdentityStore,
        ledger: RevocationLedger,
        revoke_pacer: RatePacer,
        delete_pacer: RatePacer,
        clock: Callable[[], datetime],
    ) -> None:
        self._acs = acs
        self._store = store
        self._ledger = ledger
        self._pacers = {"revoke": revoke_pacer, "delete": delete_pacer}
        self._clock = clock

    async def process(self, item: WorkItem, policy: SweepPolicy, retried: list[int]) -> Outcome:
        """Do one item, retrying throttling and outages within the run; ``retried[0]`` counts retries."""
        for attempt in range(1, MAX_ATTEMPTS_PER_RUN + 1):
            try:
                return await self._process_once(item, policy)
            except ThrottledError as error:
                self._pacers["delete" if item.kind == "retention" else "revoke"].pause(error.retry_after)
                last: ServiceError = error
            except UnavailableError as error:
                last = error
                await asyncio.sleep(min(2 ** (attempt - 1), max(1, error.retry_after)))
            except ServiceError as error:  # a 4xx ACS should not send: log the code, keep the item
                logger.warning("sweep item %s failed: %s", item.kind, error.code)
                await self._defer(item, error.code)
                return Outcome.FAILED
            except Exception as error:  # noqa: BLE001 - one bad item must not stop the sweep
                logger.exception("sweep item %s failed unexpectedly (%s)", item.kind, type(error).__name__)
                await self._defer(item, "internal_error")
                return Outcome.FAILED
            if attempt < MAX_ATTEMPTS_PER_RUN:
                retried[0] += 1
        await self._defer(item, last.code)
        return Outcome.DEFERRED

    async def _defer(self, item: WorkItem, code: str) -> None:
        """Requests get a back-off in the ledger; policy items are simply found again by a later run."""
        if item.kind != "request":
            return
        try:
            request = await self._ledger.get(item.key)
            if request is not None:
                await self._ledger.postpone(request, self._clock() + timedelta(seconds=DEFER_SECONDS), code)
        except ServiceError:
            pass  # storage is down too: the request keeps its old NotBefore and is retried anyway

    async def _process_once(self, item: WorkItem, policy: SweepPolicy) -> Outcome:
        if item.kind == "request":
            request = item.request or await self._ledger.get(item.key)
            if request is None:
                return Outcome.SKIPPED  # completed by another run or batch
            return await self._process_request(request)
        record = await self._store.get_by_row_key(item.key)
        if record is None:
            return Outcome.SKIPPED
        if item.kind == "session":
            if not policy.session_due(record):
                return Outcome.SKIPPED
            outcome = await self._revoke(record.acs_user_id)
            if outcome is Outcome.REVOKED:
                await self._store.record_revoked(record.user_key, self._clock())
            return outcome
        if not policy.retention_due(record):
            return Outcome.SKIPPED
        outcome = await self._delete(record.acs_user_id)
        # Conditional on the ETag read above: a user who got a token meanwhile keeps the mapping
        # (its identity is gone, so the token service maps them to a new one on the next call).
        await self._store.delete(record.user_key, etag=record.etag)
        return outcome

    async def _process_request(self, request: RevocationRequest) -> Outcome:
        record = await self._store.get(request.user_key)
        acs_user_id = request.acs_user_id or (record.acs_user_id if record else None)
        if acs_user_id is None:
            outcome = Outcome.ALREADY_GONE  # the user never had an identity, or it was deleted
        elif request.action == "revoke":
            outcome = await self._revoke(acs_user_id)
            if outcome is Outcome.REVOKED and record is not None and record.acs_user_id == acs_user_id:
                await self._store.record_revoked(request.user_key, self._clock())
        else:
            outcome = await self._delete(acs_user_id)
            if record is not None and record.acs_user_id == acs_user_id:
                await self._store.delete(request.user_key)
        # Only now, after ACS answered: a crash before this line repeats the (idempotent) call.
        await self._ledger.complete(request)
        return outcome

    async def _revoke(self, acs_user_id: str) -> Outcome:
        await self._pacers["revoke"].acquire()
        try:
            await self._acs.revoke_tokens(acs_user_id)
        except NotFoundError:
            return Outcome.ALREADY_GONE
        return Outcome.REVOKED

    async def _delete(self, acs_user_id: str) -> Outcome:
        await self._pacers["delete"].acquire()
        try:
            await self._acs.delete_identity(acs_user_id)
        except NotFoundError:
            return Outcome.ALREADY_GONE
        return Outcome.DELETED
