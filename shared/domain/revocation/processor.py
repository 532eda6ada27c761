"""One work item, carried out idempotently, with retries within the run and deferral after them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from shared.domain.clock import parse_utc
from shared.domain.errors import ServiceError, ThrottledError, UnavailableError
from shared.domain.ports import IdentityMap, RevocationLedger
from shared.domain.revocation.campaigns import ACTIVE, Campaigns
from shared.domain.revocation.execution import RevocationExecutor
from shared.domain.revocation.work import Outcome, SweepPolicy, WorkItem

logger = logging.getLogger(__name__)

#: tries per item within one run when ACS throttles or fails transiently
MAX_ATTEMPTS_PER_RUN = 4
#: a request that failed transiently waits this long before a run claims it again
DEFER_SECONDS = 60


class ItemProcessor:
    """Carries out work items against ACS, the identity map and the ledger."""

    def __init__(
        self,
        executor: RevocationExecutor,
        identities: IdentityMap,
        ledger: RevocationLedger,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        resource: str = "",
        campaigns: Campaigns | None = None,
    ) -> None:
        #: the ACS resource this deployment uses: policy work for another resource's identities is skipped
        self._resource = resource
        self._campaigns = campaigns
        self._executor = executor
        self._identities = identities
        self._ledger = ledger
        self._clock = clock
        self._sleep = sleep

    async def process(self, item: WorkItem, policy: SweepPolicy, retried: list[int]) -> Outcome:
        """Do one item, retrying throttling and outages within the run; ``retried[0]`` counts retries."""
        last: ServiceError | None = None
        for attempt in range(1, MAX_ATTEMPTS_PER_RUN + 1):
            try:
                return await self._process_once(item, policy)
            except ThrottledError as error:
                pacer = self._executor.delete_pacer if item.kind == "retention" else self._executor.revoke_pacer
                pacer.pause(error.retry_after)
                last = error
            except UnavailableError as error:
                last = error
                await self._sleep(min(2 ** (attempt - 1), max(1, error.retry_after)))
            except ServiceError as error:  # a 4xx ACS should not send: log the code, keep the item
                logger.warning("sweep item %s failed: %s", item.kind, error.code)
                await self._defer(item, error.code)
                return Outcome.FAILED
            except Exception as error:
                logger.exception("sweep item %s failed unexpectedly (%s)", item.kind, type(error).__name__)
                await self._defer(item, "internal_error")
                return Outcome.FAILED
            if attempt < MAX_ATTEMPTS_PER_RUN:
                retried[0] += 1
        await self._defer(item, last.code if last is not None else "unavailable")
        return Outcome.DEFERRED

    async def _campaign_item(self, item: WorkItem) -> Outcome:
        """Revoke one identity for an incident campaign, unless it was revoked since the campaign's T."""
        campaign_id, _, row_key = item.key.partition(".")
        state = await self._campaigns.state(campaign_id) if self._campaigns is not None else None
        if state is None or state.get("status") != ACTIVE:
            return Outcome.SKIPPED  # cancelled (or gone): stop here
        before = parse_utc(state.get("before"))
        record = await self._identities.get_by_row_key(row_key)
        if record is None or before is None:
            return Outcome.SKIPPED
        if not record.belongs_to(self._resource):
            return Outcome.FOREIGN
        if record.revoked_since(before) or record.created_after(before):
            return Outcome.SKIPPED  # no ACS call: every token from before T is dead already, or there never was one
        started = self._clock()
        outcome = await self._executor.revoke(record.acs_user_id)
        if outcome is Outcome.REVOKED:
            await self._identities.record_revoked(record.user_key, started)
            await self._executor.journal.tokens_revoked(
                record.user_key, record.acs_user_id, "campaign", str(state.get("reason", ""))
            )
        return outcome

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
            record = await self._identities.get(request.user_key)
            if request.action == "revoke" and record is not None and record.revoked_since(request.requested_at):
                await self._ledger.complete(request)  # a campaign or another request revoked it after this was asked
                return Outcome.SKIPPED
            return await self._executor.carry_out(request, mapped_acs_user_id=record.acs_user_id if record else None)
        if item.kind == "campaign":
            return await self._campaign_item(item)
        record = await self._identities.get_by_row_key(item.key)
        if record is None:
            return Outcome.SKIPPED
        if not record.belongs_to(self._resource):
            return Outcome.FOREIGN  # reported in the run's summary; no ACS call can touch it from here
        if item.kind == "session":
            if not policy.session_due(record):
                return Outcome.SKIPPED
            started = self._clock()
            outcome = await self._executor.revoke(record.acs_user_id)
            if outcome is Outcome.REVOKED:
                await self._identities.record_revoked(record.user_key, started)
                await self._executor.journal.tokens_revoked(record.user_key, record.acs_user_id, "session", "maximum session age")
            return outcome
        if not policy.retention_due(record):
            return Outcome.SKIPPED
        outcome = await self._executor.delete(record.acs_user_id)
        if outcome is Outcome.FOREIGN:
            return outcome  # ACS says it is another resource's (a mapping older than AcsResource): keep it
        if outcome is Outcome.DELETED:
            await self._executor.journal.identity_deleted(record.user_key, record.acs_user_id, "retention", "idle past retention")
        # Conditional on the ETag read above: a user who got a token meanwhile keeps the mapping
        # (its identity is gone, so the token service maps them to a new one on the next call).
        await self._identities.delete(record.user_key, etag=record.etag, acs_user_id=record.acs_user_id)
        return outcome
