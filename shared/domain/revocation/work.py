"""One unit of sweep work, the policies that find work, and the batch message that carries it.

Work items name what to do, not how far it got: a ledger request (``request``), an
identity over the maximum session age (``session``) or past the retention period
(``retention``). Processing re-reads the current state first, so an item handed out
twice (a retried queue batch, a timer run after a crash) costs a read, not a second
ACS call, once the first has been recorded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from shared.domain.models import IdentityRecord, RevocationRequest

Kind = Literal["request", "session", "retention", "campaign"]
_PREFIX: dict[Kind, str] = {"request": "r", "session": "s", "retention": "d", "campaign": "c"}
_KIND_OF: dict[str, Kind] = {prefix: kind for kind, prefix in _PREFIX.items()}
MESSAGE_VERSION = 1


class Outcome(str, Enum):
    """What became of one work item."""

    REVOKED = "revoked"
    DELETED = "deleted"
    ALREADY_GONE = "alreadyGone"  # ACS answered 404, or there was no identity: nothing left to revoke
    SKIPPED = "skipped"  # no longer due (done by an earlier run, or the user came back)
    FOREIGN = "foreign"  # the identity belongs to another ACS resource: nothing this deployment can do
    DEFERRED = "deferred"  # transient failures: left for a later run, nothing lost
    FAILED = "failed"  # an unexpected error; the item stays for a later run


@dataclass(frozen=True)
class WorkItem:
    """A request (by ledger RowKey), a policy item (by identity RowKey, a SHA-256 hex), or a campaign item
    (``<campaign id>.<identity RowKey>``)."""

    kind: Kind
    key: str
    #: the request as just read by the planner (saves a read); never serialized: a queue batch re-reads it
    request: RevocationRequest | None = field(default=None, compare=False, repr=False)

    def encode(self) -> str:
        return f"{_PREFIX[self.kind]}:{self.key}"

    @classmethod
    def decode(cls, text: str) -> WorkItem:
        prefix, _, key = text.partition(":")
        kind = _KIND_OF.get(prefix)
        if kind is None or not key or len(key) > 80:
            raise ValueError(f"not a work item: {text[:40]!r}")
        return cls(kind, key)


def encode_batch(items: Sequence[WorkItem]) -> str:
    """A batch message's text: a small, versioned JSON document (item keys only, never user ids)."""
    return json.dumps({"v": MESSAGE_VERSION, "items": [item.encode() for item in items]}, separators=(",", ":"))


def decode_batch(body: bytes | str) -> list[WorkItem]:
    """The items of a batch message; ValueError if it is not one (the host then retries and poisons it)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("v") != MESSAGE_VERSION or not isinstance(document.get("items"), list):
        raise ValueError("not a revocation batch message")
    return [WorkItem.decode(str(entry)) for entry in document["items"]]


async def chunks(items: AsyncIterable[WorkItem], size: int) -> AsyncIterator[list[WorkItem]]:
    """Consecutive lists of at most ``size`` items, streamed."""
    batch: list[WorkItem] = []
    async for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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
        """No token issued (nor identity created) since the retention cut-off."""
        if self.retention_cutoff is None:
            return False
        last_seen = record.last_issued_at or record.created_at
        return last_seen < self.retention_cutoff
