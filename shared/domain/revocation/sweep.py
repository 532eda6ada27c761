"""The revocation sweep: find what policy says must be revoked or deleted, and do it within a budget.

A timer run plans work as a stream (ledger requests first, then identities over
the maximum session age, then idle ones past retention), processes it with
bounded concurrency under the rate pacers, and stops claiming new items before
its time budget ends. What is left is fanned out as queue batches scheduled at
the same rate (and the fan-out window is checkpointed, so the next timer run does
not plan the same policy work twice), or, without a queue, simply found again by
the next run. Memory stays flat: items are streamed page by page, never listed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.domain.clock import format_utc, parse_utc, utc_now
from shared.domain.errors import UnavailableError
from shared.domain.journal import Journal
from shared.domain.metrics import CAMPAIGN_REMAINING, SWEEP_BACKLOG
from shared.domain.ports import AcsIdentityService, AuditLog, BatchQueue, IdentityMap, RevocationLedger
from shared.domain.revocation.budget import BudgetStore, FleetBudget, PacedBudget
from shared.domain.revocation.campaigns import Campaigns
from shared.domain.revocation.execution import RevocationExecutor
from shared.domain.revocation.pacing import Pacer, RatePacer
from shared.domain.revocation.processor import ItemProcessor
from shared.domain.revocation.work import Outcome, SweepPolicy, WorkItem, chunks, encode_batch

logger = logging.getLogger("shared.revocation")

CHECKPOINT = "checkpoint"
LAST_RUN = "last-run"
LAST_BATCH = "last-batch"
#: a claimed item needs at most about this long, so claiming stops this much before the budget ends
CLAIM_MARGIN_SECONDS = 2.0
INDEX_REPAIR = "index-repair"
#: index entries and mappings the repair pass checks per timer run (a full pass over N users takes N / this runs)
INDEX_REPAIR_PER_RUN = 200
#: at most this many audit entries are pruned per timer run (the rest next time)
AUDIT_PRUNE_PER_RUN = 1000
#: a queue batch retries the policy items it could not do after this long
BATCH_RETRY_DELAY_SECONDS = 60


@dataclass(frozen=True)
class RevocationSettings:
    """How the revocation sweep works and how hard it may push ACS (``REVOCATION_*`` settings)."""

    table_name: str
    queue_name: str
    #: revocations (and, separately, deletions) per 30 s this app may spend; ACS allows 500 per resource
    rate_per_30s: int
    concurrency: int
    #: a sweep stops claiming work after this many seconds, leaving the rest for the queue or the next run
    time_budget_seconds: int
    batch_size: int
    #: revoke identities whose newest token is older than this (0 = off)
    max_session_hours: int
    #: delete identities with no token issued for this long (0 = off)
    retention_days: int

    @property
    def rate_per_second(self) -> float:
        return self.rate_per_30s / 30.0


@dataclass
class SweepSummary:
    """What one timer run or queue batch did: logged as one line and stored as the status document."""

    trigger: str  # "timer" or "queue"
    started_at: str
    found: int = 0
    revoked: int = 0
    deleted: int = 0
    already_gone: int = 0
    skipped: int = 0
    foreign: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    fanned_out: int = 0
    batches: int = 0
    poison_messages: int = 0
    #: revocation requests still waiting when the run ended (the backlog gauge)
    pending: int = 0
    audit_pruned: int = 0
    #: reverse-index entries the repair pass fixed this run (after a crash between the index and map writes)
    index_repaired: int = 0
    past_due: bool = False
    stopped_by_budget: bool = False
    duration_ms: int = 0

    def count(self, outcome: Outcome) -> None:
        name = {"alreadyGone": "already_gone"}.get(outcome.value, outcome.value)
        setattr(self, name, getattr(self, name) + 1)

    def to_json(self) -> dict[str, object]:
        return {_camel(key): value for key, value in asdict(self).items()}

    def log_line(self) -> str:
        return (
            f"revocation sweep trigger={self.trigger} found={self.found} revoked={self.revoked} deleted={self.deleted} "
            f"already_gone={self.already_gone} skipped={self.skipped} foreign={self.foreign} "
            f"retried={self.retried} failed={self.failed} "
            f"deferred={self.deferred} fanned_out={self.fanned_out} batches={self.batches} "
            f"poison={self.poison_messages} duration_ms={self.duration_ms}"
        )


@dataclass
class CampaignTally:
    """What one run or batch did for each incident campaign, reported to its document at the end."""

    #: campaign id -> identities its completed scan found still to revoke
    scanned: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, Counter[Outcome]] = field(default_factory=lambda: defaultdict(Counter))
    #: campaigns with items fanned out to the queue in this run, and until when the queue owns them
    fanned_out: set[str] = field(default_factory=set)
    owned_until: datetime | None = None

    def count(self, item: WorkItem, outcome: Outcome) -> None:
        if item.kind == "campaign":
            self.outcomes[item.key.partition(".")[0]][outcome] += 1

    def campaign_ids(self) -> set[str]:
        return set(self.scanned) | set(self.outcomes) | self.fanned_out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class SweepOptions:
    """The sweep's optional parts, passed from the composition root through :func:`build_sweeper` as one value."""

    #: the ACS resource this deployment issues from (mappings of another one are not swept with its client)
    resource: str = ""
    journal: Journal | None = None
    #: the audit trail, pruned of entries older than ``audit_retention_days`` by each timer run (0: kept)
    audit: AuditLog | None = None
    audit_retention_days: int = 0
    #: incident campaigns: scanned and worked on by every timer run while active
    campaigns: Campaigns | None = None


class Sweeper:
    """Timer runs and queue batches of the revocation sweep."""

    def __init__(
        self,
        processor: ItemProcessor,
        identities: IdentityMap,
        ledger: RevocationLedger,
        queue: BatchQueue | None,
        settings: RevocationSettings,
        max_token_minutes: int,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        options: SweepOptions = SweepOptions(),
        budgets: list[FleetBudget] | None = None,
    ) -> None:
        self._journal = options.journal or Journal()
        #: the fleet-wide budgets the pacers draw from (their old slots are pruned after each run)
        self._budgets = budgets or []
        self._campaigns = options.campaigns
        self._resource = options.resource
        self._audit = options.audit
        self._audit_retention = timedelta(days=options.audit_retention_days) if options.audit_retention_days else None
        self._processor = processor
        self._identities = identities
        self._ledger = ledger
        self._queue = queue
        self._settings = settings
        self._max_token_minutes = max_token_minutes
        self._clock = clock
        self._monotonic = monotonic

    def _policy(self, now: datetime) -> SweepPolicy:
        return SweepPolicy.at(
            now,
            max_token_minutes=self._max_token_minutes,
            max_session_hours=self._settings.max_session_hours,
            retention_days=self._settings.retention_days,
        )

    # ------------------------------------------------------------------ entry points

    async def run_timer(self, *, past_due: bool = False, budget_seconds: float | None = None) -> SweepSummary:
        """One scheduled run: plan, process within the budget, fan out or carry over the rest."""
        started = self._monotonic()
        now = self._clock()
        summary = SweepSummary(trigger="timer", started_at=format_utc(now), past_due=past_due)
        budget = self._settings.time_budget_seconds if budget_seconds is None else budget_seconds
        checkpoint = await self._ledger.load_status(CHECKPOINT) or {}
        queue_owns_policy_until = parse_utc(checkpoint.get("scheduledUntil"))
        plan_policy = queue_owns_policy_until is None or queue_owns_policy_until <= now
        policy = self._policy(now)
        tally = CampaignTally()
        items = self._plan(policy, plan_policy=plan_policy, tally=tally)
        leftover = await self._process(items, policy, summary, deadline=started + budget, tally=tally)
        if leftover is not None:
            summary.stopped_by_budget = True
            if self._queue is not None:
                await self._fan_out(self._queue, leftover, summary, queue_owns_policy_until, tally)
            else:
                await leftover.aclose()
        await self._report_campaigns(tally)
        if self._queue is not None:
            summary.poison_messages = await self._queue.poison_count()
        await self._maintain(summary, now)
        summary.duration_ms = int((self._monotonic() - started) * 1000)
        await self._ledger.save_status(LAST_RUN, summary.to_json())
        logger.info(summary.log_line())
        return summary

    async def run_batch(self, items: list[WorkItem]) -> SweepSummary:
        """One queue batch: process its items; re-enqueue policy items that could not be done yet."""
        started = self._monotonic()
        now = self._clock()
        summary = SweepSummary(trigger="queue", started_at=format_utc(now))
        policy = self._policy(now)
        deferred: list[WorkItem] = []

        async def stream() -> AsyncGenerator[WorkItem, None]:
            for item in items:
                yield item

        tally = CampaignTally()
        leftover = await self._process(
            stream(), policy, summary, deadline=started + self._settings.time_budget_seconds, deferred=deferred, tally=tally
        )
        remaining = [item async for item in leftover] if leftover is not None else []
        # Requests carry their own back-off in the ledger; only policy items need the queue to come back.
        retry = [item for item in deferred + remaining if item.kind != "request"]
        if retry and self._queue is not None:
            await self._queue.send(encode_batch(retry), delay_seconds=BATCH_RETRY_DELAY_SECONDS)
            summary.fanned_out = len(retry)
            summary.batches = 1
        await self._report_campaigns(tally)
        summary.duration_ms = int((self._monotonic() - started) * 1000)
        await self._ledger.save_status(LAST_BATCH, summary.to_json())
        logger.info(summary.log_line())
        return summary

    async def _maintain(self, summary: SweepSummary, now: datetime) -> None:
        """Housekeeping after the work: the backlog gauge, and the audit trail's retention."""
        summary.pending = (await self._ledger.count_pending())[0]
        for budget in self._budgets:
            try:
                await budget.prune()
            except UnavailableError:
                logger.warning("old budget slots could not be pruned this run (storage unavailable)")
        try:
            cursor = await self._ledger.load_status(INDEX_REPAIR) or {}
            cursor, summary.index_repaired = await self._identities.repair_index(cursor, INDEX_REPAIR_PER_RUN)
            await self._ledger.save_status(INDEX_REPAIR, cursor)
        except UnavailableError:
            logger.warning("the reverse index could not be checked this run (storage unavailable)")
        self._journal.metrics.set(SWEEP_BACKLOG, summary.pending)
        if self._audit is not None and self._audit_retention is not None:
            try:
                summary.audit_pruned = await self._audit.prune(now - self._audit_retention, limit=AUDIT_PRUNE_PER_RUN)
            except UnavailableError:
                logger.warning("audit trail could not be pruned this run (storage unavailable)")

    # ------------------------------------------------------------------ planning

    async def _plan(self, policy: SweepPolicy, *, plan_policy: bool, tally: CampaignTally) -> AsyncGenerator[WorkItem, None]:
        async for request in self._ledger.due(policy.now):
            yield WorkItem("request", request.row_key, request)
        if self._campaigns is not None:
            for campaign in await self._campaigns.to_scan(policy.now):
                async for item in self._scan_campaign(campaign, tally):
                    yield item
        if not plan_policy:
            return  # queue batches scheduled by an earlier run own the policy work for now
        if policy.session_cutoff is not None:
            async for record in self._identities.iter_records(
                issued_since=policy.live_tokens_since, issued_before=policy.session_cutoff
            ):
                if policy.session_due(record):
                    yield WorkItem("session", record.row_key)
        if policy.retention_cutoff is not None:
            async for record in self._identities.iter_records(issued_before=policy.retention_cutoff):
                yield WorkItem("retention", record.row_key)

    async def _scan_campaign(self, campaign: dict[str, Any], tally: CampaignTally) -> AsyncGenerator[WorkItem, None]:
        """The identities that may still hold a live token from before the campaign's T, not revoked since."""
        before = parse_utc(campaign.get("before"))
        if before is None:
            return
        found = 0
        async for record in self._identities.iter_records(issued_since=before - timedelta(minutes=self._max_token_minutes)):
            if not record.belongs_to(self._resource) or record.revoked_since(before) or record.created_after(before):
                continue  # another resource's; revoked since T; or created after T (a sign-in during the incident)
            found += 1
            yield WorkItem("campaign", f"{campaign['id']}.{record.row_key}")
        tally.scanned[campaign["id"]] = found  # only a scan that ran to its end says how many are left

    async def _report_campaigns(self, tally: CampaignTally) -> None:
        if self._campaigns is None:
            return
        for campaign_id in tally.campaign_ids():
            owned = tally.owned_until if campaign_id in tally.fanned_out else None
            view = await self._campaigns.report(
                campaign_id,
                tally.outcomes.get(campaign_id, Counter()),
                scanned=tally.scanned.get(campaign_id),
                scheduled_until=owned,
            )
            if view is not None:
                self._journal.metrics.set(CAMPAIGN_REMAINING, view["remaining"], {"campaign": campaign_id})

    # ------------------------------------------------------------------ processing

    async def _process(
        self,
        items: AsyncGenerator[WorkItem, None],
        policy: SweepPolicy,
        summary: SweepSummary,
        *,
        deadline: float,
        deferred: list[WorkItem] | None = None,
        tally: CampaignTally | None = None,
    ) -> AsyncGenerator[WorkItem, None] | None:
        """Workers pull items until the stream ends or the budget does; returns the unclaimed rest, if any."""
        lock = asyncio.Lock()
        exhausted = False
        retried = [0]
        stopped = False

        async def next_item() -> WorkItem | None:
            nonlocal exhausted, stopped
            async with lock:
                if exhausted or stopped:
                    return None
                if self._monotonic() + CLAIM_MARGIN_SECONDS >= deadline:
                    stopped = True
                    return None
                try:
                    return await anext(items)
                except StopAsyncIteration:
                    exhausted = True
                    return None

        async def worker() -> None:
            while (item := await next_item()) is not None:
                summary.found += 1
                outcome = await self._processor.process(item, policy, retried)
                summary.count(outcome)
                if tally is not None:
                    tally.count(item, outcome)
                if outcome is Outcome.DEFERRED and deferred is not None:
                    deferred.append(item)

        await asyncio.gather(*(worker() for _ in range(self._settings.concurrency)))
        summary.retried += retried[0]
        if exhausted:
            return None
        return items

    # ------------------------------------------------------------------ fan-out

    async def _fan_out(
        self,
        queue: BatchQueue,
        leftover: AsyncIterator[WorkItem],
        summary: SweepSummary,
        busy_until: datetime | None,
        tally: CampaignTally,
    ) -> None:
        """Enqueue the rest as batches one pacing interval apart, after any batches already scheduled."""
        now = self._clock()
        start = max(now, busy_until or now)
        interval = self._settings.batch_size / self._settings.rate_per_second
        lease_seconds = interval * 3 + 300  # long enough for a batch to be retried by the host before it expires
        batch_index = 0
        async for batch in chunks(leftover, self._settings.batch_size):
            due = start + timedelta(seconds=batch_index * interval)
            requests = [item.key for item in batch if item.kind == "request"]
            if requests:  # lease first: if sending then fails, the lease merely delays them
                await self._ledger.lease(requests, due + timedelta(seconds=lease_seconds))
            await queue.send(encode_batch(batch), delay_seconds=(due - now).total_seconds())
            tally.fanned_out.update(item.key.partition(".")[0] for item in batch if item.kind == "campaign")
            summary.fanned_out += len(batch)
            batch_index += 1
        summary.batches = batch_index
        if batch_index:
            until = start + timedelta(seconds=batch_index * interval + lease_seconds)
            tally.owned_until = until
            await self._ledger.save_status(CHECKPOINT, {"scheduledUntil": format_utc(until), "batches": batch_index})


def build_sweeper(
    acs: AcsIdentityService,
    identities: IdentityMap,
    ledger: RevocationLedger,
    queue: BatchQueue | None,
    settings: RevocationSettings,
    max_token_minutes: int,
    clock: Callable[[], datetime] = utc_now,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wall: Callable[[], float] = time.time,
    options: SweepOptions = SweepOptions(),
    budget_store: BudgetStore | None = None,
) -> Sweeper:
    """A sweeper over given ports: one pacer per ACS operation, burst at most one second's worth.

    ``monotonic`` and ``sleep`` are the sweep's sense of elapsed time (budget, pacing, back-off);
    unit tests pass a fake pair so that waiting costs no real time.
    """
    burst = max(1, min(settings.concurrency, settings.rate_per_30s // 30))
    budgets: list[FleetBudget] = []

    def pacer(operation: str) -> Pacer:
        local = RatePacer(settings.rate_per_second, burst, clock=monotonic, sleep=sleep)
        if budget_store is None:
            return local
        fleet = FleetBudget(budget_store, operation, settings.rate_per_30s, wall=wall, sleep=sleep)
        budgets.append(fleet)
        return PacedBudget(local, fleet)

    executor = RevocationExecutor(
        acs,
        identities,
        ledger,
        clock,
        revoke_pacer=pacer("revoke"),
        delete_pacer=pacer("delete"),
        journal=options.journal,
    )
    if options.campaigns is None:
        options = replace(options, campaigns=Campaigns(ledger, clock, settings.rate_per_second, monotonic))
    processor = ItemProcessor(
        executor, identities, ledger, clock, sleep=sleep, resource=options.resource, campaigns=options.campaigns
    )
    return Sweeper(
        processor,
        identities,
        ledger,
        queue,
        settings,
        max_token_minutes,
        clock=clock,
        monotonic=monotonic,
        options=options,
        budgets=budgets,
    )
