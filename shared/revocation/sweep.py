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
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from shared.identity_store import IdentityStore
from shared.revocation.fanout import QueueFanout, chunks
from shared.revocation.ledger import RevocationLedger
from shared.revocation.work import ItemProcessor, Outcome, SweepPolicy, WorkItem
from shared.settings import RevocationSettings

logger = logging.getLogger("shared.revocation")

CHECKPOINT = "checkpoint"
LAST_RUN = "last-run"
LAST_BATCH = "last-batch"
#: a claimed item needs at most about this long, so claiming stops this much before the budget ends
CLAIM_MARGIN_SECONDS = 2.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class SweepSummary:
    trigger: str  # "timer" or "queue"
    started_at: str
    found: int = 0
    revoked: int = 0
    deleted: int = 0
    already_gone: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    fanned_out: int = 0
    batches: int = 0
    poison_messages: int = 0
    past_due: bool = False
    stopped_by_budget: bool = False
    duration_ms: int = 0

    def count(self, outcome: Outcome) -> None:
        name = {"alreadyGone": "already_gone"}.get(outcome.value, outcome.value)
        setattr(self, name, getattr(self, name) + 1)

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        return {_camel(key): value for key, value in document.items()}

    def log_line(self) -> str:
        return (
            f"revocation sweep trigger={self.trigger} found={self.found} revoked={self.revoked} deleted={self.deleted} "
            f"already_gone={self.already_gone} skipped={self.skipped} retried={self.retried} failed={self.failed} "
            f"deferred={self.deferred} fanned_out={self.fanned_out} batches={self.batches} "
            f"poison={self.poison_messages} duration_ms={self.duration_ms}"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Sweeper:
    def __init__(
        self,
        processor: ItemProcessor,
        store: IdentityStore,
        ledger: RevocationLedger,
        fanout: QueueFanout | None,
        settings: RevocationSettings,
        max_token_minutes: int,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._processor = processor
        self._store = store
        self._ledger = ledger
        self._fanout = fanout
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
        summary = SweepSummary(trigger="timer", started_at=_iso(now), past_due=past_due)
        budget = self._settings.time_budget_seconds if budget_seconds is None else budget_seconds
        checkpoint = await self._ledger.load_status(CHECKPOINT) or {}
        queue_owns_policy_until = _parse_time(checkpoint.get("scheduledUntil"))
        plan_policy = queue_owns_policy_until is None or queue_owns_policy_until <= now
        policy = self._policy(now)
        items = self._plan(policy, plan_policy)
        leftover = await self._process(items, policy, summary, deadline=started + budget)
        if leftover is not None:
            summary.stopped_by_budget = True
            if self._fanout is not None:
                await self._fan_out(leftover, summary, queue_owns_policy_until)
            else:
                await leftover.aclose()
        if self._fanout is not None:
            summary.poison_messages = await self._fanout.poison_count()
        summary.duration_ms = int((self._monotonic() - started) * 1000)
        await self._ledger.save_status(LAST_RUN, summary.to_json())
        logger.info(summary.log_line())
        return summary

    async def run_batch(self, items: list[WorkItem]) -> SweepSummary:
        """One queue batch: process its items; re-enqueue policy items that could not be done yet."""
        started = self._monotonic()
        now = self._clock()
        summary = SweepSummary(trigger="queue", started_at=_iso(now))
        policy = self._policy(now)
        deferred: list[WorkItem] = []

        async def stream() -> AsyncIterator[WorkItem]:
            for item in items:
                yield item

        leftover = await self._process(
            stream(), policy, summary, deadline=started + self._settings.time_budget_seconds, deferred=deferred
        )
        remaining = [item async for item in leftover] if leftover is not None else []
        # Requests carry their own back-off in the ledger; only policy items need the queue to come back.
        retry = [item for item in deferred + remaining if item.kind != "request"]
        if retry and self._fanout is not None:
            await self._fanout.send(retry, delay_seconds=60)
            summary.fanned_out = len(retry)
            summary.batches = 1
        summary.duration_ms = int((self._monotonic() - started) * 1000)
        await self._ledger.save_status(LAST_BATCH, summary.to_json())
        logger.info(summary.log_line())
        return summary

    # ------------------------------------------------------------------ planning

    async def _plan(self, policy: SweepPolicy, plan_policy: bool) -> AsyncIterator[WorkItem]:
        async for request in self._ledger.due(policy.now):
            yield WorkItem("request", request.row_key, request)
        if not plan_policy:
            return  # queue batches scheduled by an earlier run own the policy work for now
        if policy.session_cutoff is not None:
            async for record in self._store.iter_records(
                issued_since=policy.live_tokens_since, issued_before=policy.session_cutoff
            ):
                if policy.session_due(record):
                    yield WorkItem("session", record.row_key)
        if policy.retention_cutoff is not None:
            async for record in self._store.iter_records(issued_before=policy.retention_cutoff):
                yield WorkItem("retention", record.row_key)

    # ------------------------------------------------------------------ processing

    async def _process(
        self,
        items: AsyncIterator[WorkItem],
        policy: SweepPolicy,
        summary: SweepSummary,
        *,
        deadline: float,
        deferred: list[WorkItem] | None = None,
    ) -> AsyncIterator[WorkItem] | None:
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
                if outcome is Outcome.DEFERRED and deferred is not None:
                    deferred.append(item)

        await asyncio.gather(*(worker() for _ in range(self._settings.concurrency)))
        summary.retried += retried[0]
        if exhausted:
            return None
        return items

    # ------------------------------------------------------------------ fan-out

    async def _fan_out(self, leftover: AsyncIterator[WorkItem], summary: SweepSummary, busy_until: datetime | None) -> None:
        """Enqueue the rest as batches one pacing interval apart, after any batches already scheduled."""
        assert self._fanout is not None
        now = self._clock()
        start = max(now, busy_until or now)
        interval = self._settings.batch_size / self._settings.rate_per_second
        lease_seconds = interval * 3 + 300  # long enough for a batch to be retried by the host before it expires
        batch_index = 0
        collected: list[WorkItem] = []
        async for item in leftover:
            collected.append(item)
            if len(collected) == self._settings.batch_size:
                await self._send_batch(collected, start, batch_index, interval, lease_seconds, now)
                summary.fanned_out += len(collected)
                batch_index += 1
                collected = []
        if collected:
            await self._send_batch(collected, start, batch_index, interval, lease_seconds, now)
            summary.fanned_out += len(collected)
            batch_index += 1
        summary.batches = batch_index
        if batch_index:
            until = start + timedelta(seconds=batch_index * interval + lease_seconds)
            await self._ledger.save_status(CHECKPOINT, {"scheduledUntil": _iso(until), "batches": batch_index})

    async def _send_batch(
        self, batch: list[WorkItem], start: datetime, index: int, interval: float, lease_seconds: float, now: datetime
    ) -> None:
        assert self._fanout is not None
        due = start + timedelta(seconds=index * interval)
        requests = [item.key for item in batch if item.kind == "request"]
        if requests:  # lease first: if sending then fails, the lease merely delays them
            await self._ledger.lease(requests, due + timedelta(seconds=lease_seconds))
        await self._fanout.send(batch, delay_seconds=(due - now).total_seconds())


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None

