"""Seeding benchmark data: ACS identities through the emulator's API, rows through Azurite's Table API, bounded and retried.

Why it is built this way (measured on the 2-core development machine, Azurite 3.35.0 in memory, 2026-11-27):

- ACS identities are created through the emulator's own API (the SDK's ``create_user``): about 2,000 per second
  at 8-32 callers, so 100,000 take under a minute; no need to write the emulator's SQLite state behind its back.
- Rows go in as entity group transactions of up to 100 operations, all in one partition (the service's rule):
  about 3,800 rows/s into small partitions, against about 1,000/s one row per request.
- Azurite keeps each table as a LokiJS collection and finds an entity by PartitionKey first, then scans that
  partition for the RowKey: every write or point read costs time linear in its partition's size. The identity
  map spreads over 256 partitions (about 390 rows each at 100,000 users), so its cost stays flat; one partition
  of 100,000 rows (the revocation ledger keeps every request in one) took 6 minutes to fill and then served
  about 50 point reads/s (880/s at 10,000 rows; ``python -m bench --only azurite_partition`` measures it).
  Real Table storage indexes both keys; this is Azurite's limit.
- A few transactions at a time (Azurite is one Node.js process; more callers only queue inside it), each
  retried with exponential back-off and jitter when the connection drops (azure-core does not retry a POST
  whose answer was lost) or Azurite answers 5xx. Every operation is an upsert (replace), so a transaction
  that did land before its answer was lost is simply written again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.data.tables import UpdateMode

from shared.adapters.identity_map import new_entity
from shared.adapters.ledger import REQUEST_PARTITION
from shared.domain.caller import Caller
from shared.domain.models import request_row_key

#: the Table service's limit on operations in one entity group transaction
MAX_TRANSACTION = 100
#: transactions in flight at once: enough to keep Azurite busy, few enough not to queue inside it
TRANSACTION_CONCURRENCY = 4
ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0

Entity = dict[str, Any]
Operation = tuple[str, Entity, dict[str, Any]]


class TransactionTable(Protocol):
    """What the seeding needs of ``azure.data.tables.aio.TableClient``."""

    def submit_transaction(self, operations: Any, **kwargs: Any) -> Awaitable[Any]: ...


class AcsCreator(Protocol):
    """What the seeding needs of the async ``CommunicationIdentityClient``."""

    async def create_user(self) -> Any: ...


def user_key(index: int) -> str:
    """The app's user key (dev auth) of seeded user ``index``: what the identity map and ledger are keyed by."""
    return Caller("dev", f"bench-{index}", frozenset()).key


def identity_entity(index: int, acs_user_id: str, *, created_at: datetime, last_issued_at: datetime, resource: str) -> Entity:
    """An identity-map row as the token service writes it (``shared/adapters/identity_map.py``)."""
    entity: Entity = new_entity(user_key(index), acs_user_id, created_at, resource, last_issued_at=last_issued_at)
    return entity


def revoke_request_entity(index: int, *, now: datetime) -> Entity:
    """A pending revoke request as ``TableRevocationLedger.record`` writes it (an operator campaign's row)."""
    key = user_key(index)
    return {
        "PartitionKey": REQUEST_PARTITION,
        "RowKey": request_row_key("revoke", key),
        "Action": "revoke",
        "UserKey": key,
        "Reason": "bench",
        "Source": "bench",
        "RequestedAt": now,
        "NotBefore": now,
    }


def transactions(entities: Iterable[Entity], size: int = MAX_TRANSACTION) -> list[list[Operation]]:
    """Upserts grouped into transactions of at most ``size`` operations, each within one partition."""
    if not 1 <= size <= MAX_TRANSACTION:
        raise ValueError(f"a transaction holds 1 to {MAX_TRANSACTION} operations")
    by_partition: dict[str, list[Operation]] = {}
    for entity in entities:
        by_partition.setdefault(entity["PartitionKey"], []).append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
    return [ops[i : i + size] for ops in by_partition.values() for i in range(0, len(ops), size)]


def retryable(error: BaseException) -> bool:
    """A dropped connection, a lost answer or a server-side failure: worth another try (the write is idempotent)."""
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        return status >= 500 or status == 429
    return False


def backoff_seconds(attempt: int, rng: random.Random) -> float:
    """Exponential back-off with full jitter (attempt 1 waits up to 0.5 s, then 1, 2, 4, 8 s at most)."""
    return rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))


@dataclass
class SeedStats:
    """How a seeding went: rows written, transactions retried, seconds."""

    rows: int = 0
    transactions: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


async def submit_transactions(
    table: TransactionTable,
    batches: Sequence[Sequence[Operation]],
    *,
    concurrency: int = TRANSACTION_CONCURRENCY,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedStats:
    """Submit every transaction, ``concurrency`` at a time, each retried up to ``attempts`` times; raises the last error."""
    rng = rng or random.Random(7)
    stats = SeedStats()
    queue = iter(batches)
    started = time.perf_counter()

    async def submit(batch: Sequence[Operation]) -> None:
        for attempt in range(1, attempts + 1):
            try:
                await table.submit_transaction(batch)
                return
            except Exception as error:
                if not retryable(error) or attempt == attempts:
                    raise
                stats.retries += 1
                stats.errors.append(type(error).__name__)
                await sleep(backoff_seconds(attempt, rng))

    async def worker() -> None:
        for batch in queue:
            await submit(batch)
            stats.rows += len(batch)
            stats.transactions += 1
            if progress is not None:
                progress(stats.rows)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.seconds = time.perf_counter() - started
    return stats


async def create_identities(client: AcsCreator, count: int, *, concurrency: int = 16) -> list[str]:
    """``count`` new ACS identities through the API (the client's own retries cover dropped connections)."""
    ids: list[str] = []
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            user = await client.create_user()
            ids.append(user.properties["id"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


def progress_printer(total: int, what: str, every: int = 20_000) -> Callable[[int], None]:
    """A progress callback that prints a line each time another ``every`` rows are written (long seedings only)."""
    state = {"next": every}

    def report(done: int) -> None:
        if total >= 2 * every and done >= state["next"]:
            print(f"   {what}: {done}/{total}", flush=True)
            state["next"] += every

    return report
