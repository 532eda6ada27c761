"""Incident revocation campaigns: "every token issued before T is dead", durable and paced.

An operator records a campaign (``POST /api/ops/campaigns``); the sweep does the rest with its
usual machinery (pacing under ACS's revoke ceiling, time budget, queue fan-out, retries):

* **Who.** Only identities that can still hold a live token issued before T: their newest token
  was issued at most the longest token lifetime before T (an identity last active two days ago
  holds only expired tokens and costs no ACS call), they were not revoked since T (a user who
  signed out after T, or whom another campaign or request already revoked, is skipped), and they
  were not created after T (a user who signs in during the incident keeps that fresh token; two
  minutes of margin cover a create still in flight at T).
* **Resumable.** Each timer run scans for the identities that still qualify (a server-side filter
  on LastIssuedAt, then LastRevokedAt) and works on those; a run killed mid-way, a poison batch or a
  deferred item is simply found again by the next scan. The campaign is done when a scan finds none.
* **Progress.** Candidates (the first complete scan), revoked, already gone, skipped, failed, and
  remaining with an ETA at the configured rate; ``GET /api/ops/campaigns/{id}`` and the sweep status.
* **Cancel.** A cancelled campaign's items are skipped from then on (within a few seconds on every
  worker: the state is cached briefly).

Users who sign in again get a fresh token at once: a revocation only kills tokens issued before
it, so a client's credential needs at most one extra refresh.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.domain.clock import format_utc, parse_utc
from shared.domain.errors import ConflictError, InvalidRequestError
from shared.domain.ports import RevocationLedger
from shared.domain.revocation.work import Outcome

ACTIVE, DONE, CANCELLED = "active", "done", "cancelled"
#: a cancel reaches every worker within this many seconds (campaign states are cached that long)
STATE_CACHE_SECONDS = 5.0
#: outcome -> the counter it adds to
COUNTERS = {
    Outcome.REVOKED: "revoked",
    Outcome.ALREADY_GONE: "alreadyGone",
    Outcome.SKIPPED: "skipped",
    Outcome.FOREIGN: "foreign",
    Outcome.FAILED: "failed",
    Outcome.DEFERRED: "deferred",
}


def new_campaign_id() -> str:
    return "c" + secrets.token_hex(6)


def progress(document: dict[str, Any], rate_per_second: float) -> dict[str, Any]:
    """The stored document plus what an operator wants to read: remaining and an ETA."""
    active = document.get("status") == ACTIVE
    remaining = max(0, int(document.get("remainingAtScan") or 0) - int(document.get("processedSinceScan") or 0)) if active else 0
    view = {key: value for key, value in document.items() if key not in ("remainingAtScan", "processedSinceScan")}
    view["remaining"] = remaining
    view["etaSeconds"] = math.ceil(remaining / rate_per_second) if document.get("status") == ACTIVE else 0
    return view


class Campaigns:
    """Campaign documents in the ledger: start, read, cancel; and what the sweep reports back."""

    def __init__(
        self,
        ledger: RevocationLedger,
        clock: Callable[[], datetime],
        rate_per_second: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._rate = rate_per_second
        self._monotonic = monotonic
        self._states: dict[str, tuple[float, dict[str, Any] | None]] = {}

    # ------------------------------------------------------------------ operators

    async def start(self, reason: str, before: datetime | None = None) -> dict[str, Any]:
        """Record a campaign; T (``before``) defaults to now and may not lie in the future."""
        now = self._clock()
        moment = before or now
        if moment > now:
            raise InvalidRequestError(
                "before must not be in the future: tokens not yet issued need no revoking.", target="before"
            )
        campaign_id = new_campaign_id()
        document: dict[str, Any] = {
            "id": campaign_id,
            "reason": reason,
            "before": format_utc(moment),
            "createdAt": format_utc(now),
            "status": ACTIVE,
            "candidates": None,
            "remainingAtScan": 0,
            "processedSinceScan": 0,
            "scannedAt": None,
            "scheduledUntil": None,
            "finishedAt": None,
            **dict.fromkeys(COUNTERS.values(), 0),
        }
        await self._ledger.create_campaign(campaign_id, document)
        return progress(document, self._rate)

    async def get(self, campaign_id: str) -> dict[str, Any] | None:
        document = await self._ledger.campaign(campaign_id)
        return progress(document, self._rate) if document is not None else None

    async def listing(self) -> list[dict[str, Any]]:
        """Every campaign, newest first."""
        documents = await self._ledger.campaigns()
        return [progress(document, self._rate) for document in sorted(documents, key=lambda d: d["createdAt"], reverse=True)]

    async def cancel(self, campaign_id: str) -> dict[str, Any] | None:
        """Stop an active campaign; ConflictError when it has already ended."""
        ended: list[str] = []

        def change(document: dict[str, Any]) -> dict[str, Any] | None:
            if document["status"] != ACTIVE:
                ended.append(document["status"])
                return None
            return {**document, "status": CANCELLED, "finishedAt": format_utc(self._clock())}

        document = await self._ledger.update_campaign(campaign_id, change)
        if ended:
            raise ConflictError(f"The campaign has already ended ({ended[0]}).", code="campaign_ended")
        self._states.pop(campaign_id, None)
        return progress(document, self._rate) if document is not None else None

    # ------------------------------------------------------------------ the sweep

    async def to_scan(self, now: datetime) -> list[dict[str, Any]]:
        """Active campaigns whose work no queue batches own at the moment."""
        due = []
        for document in await self._ledger.campaigns():
            owned_until = parse_utc(document.get("scheduledUntil"))
            if document.get("status") == ACTIVE and (owned_until is None or owned_until <= now):
                due.append(document)
        return due

    async def state(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign as a worker should act on it (cached for a few seconds)."""
        cached = self._states.get(campaign_id)
        if cached is not None and self._monotonic() - cached[0] < STATE_CACHE_SECONDS:
            return cached[1]
        document = await self._ledger.campaign(campaign_id)
        self._states[campaign_id] = (self._monotonic(), document)
        return document

    async def report(
        self, campaign_id: str, outcomes: Counter[Outcome], *, scanned: int | None, scheduled_until: datetime | None
    ) -> dict[str, Any] | None:
        """What one run or batch did for a campaign: counters, the scan's finding, done when nothing is left."""
        processed = sum(count for outcome, count in outcomes.items() if outcome is not Outcome.DEFERRED)
        unfinished = outcomes[Outcome.FAILED] + outcomes[Outcome.DEFERRED]
        now = format_utc(self._clock())

        def change(document: dict[str, Any]) -> dict[str, Any]:
            updated = dict(document)
            for outcome, count in outcomes.items():
                name = COUNTERS.get(outcome)
                if name is not None:
                    updated[name] = int(updated.get(name) or 0) + count
            if scanned is not None:
                updated["remainingAtScan"] = scanned
                updated["processedSinceScan"] = processed
                updated["scannedAt"] = now
                if updated.get("candidates") is None:
                    updated["candidates"] = scanned
            else:
                updated["processedSinceScan"] = int(updated.get("processedSinceScan") or 0) + processed
            if scheduled_until is not None:
                updated["scheduledUntil"] = format_utc(scheduled_until)
            finished = scanned is not None and scanned - processed <= 0 and not unfinished and scheduled_until is None
            if updated["status"] == ACTIVE and finished:
                updated["status"] = DONE
                updated["finishedAt"] = now
            return updated

        self._states.pop(campaign_id, None)
        document = await self._ledger.update_campaign(campaign_id, change)
        return progress(document, self._rate) if document is not None else None
