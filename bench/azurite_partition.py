"""Azurite's cost per point operation as one partition grows: 10,000 against 100,000 rows (opt-in, about 8 minutes).

``python -m bench --only azurite_partition``. Why it exists: the revocation ledger keeps every request in one
partition, and a 100,000-request sweep against Azurite would time Azurite rather than the sweep; this measures that,
so ``bench/sweep_scale.py`` can say why it sweeps the identity map's policy work instead.

Per size, in its own fresh Azurite (in memory): the rows written into one partition in transactions of 100
(``bench/seeding.py``), then 2,000 point reads and 2,000 deletes by key, 16 callers; baseline from the same run:
the same operations on a table whose rows spread over 256 partitions, as the identity map's do.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import BenchContext
from bench.report import Table
from bench.seeding import submit_transactions, transactions

CALLERS = 16
SAMPLE = 2_000


def rows(count: int, *, spread: bool) -> list[dict[str, Any]]:
    """``count`` rows of about the ledger's size, in one partition or over 256."""
    return [
        {
            "PartitionKey": f"{i % 256:02x}" if spread else "request",
            "RowKey": f"revoke-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "Action": "revoke",
            "UserKey": f'["dev","bench-{i}"]',
            "Reason": "bench",
        }
        for i in range(count)
    ]


async def _rate(keys: list[tuple[str, str]], one: Any) -> float:
    queue = iter(keys)
    started = time.perf_counter()

    async def caller() -> None:
        for partition, row in queue:
            await one(partition, row)

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return len(keys) / (time.perf_counter() - started)


async def measure(connection_string: str, count: int, *, spread: bool) -> tuple[float, float, float]:
    """(rows written per second, point reads per second, deletes per second)."""
    from azure.data.tables.aio import TableClient

    data = rows(count, spread=spread)
    async with TableClient.from_connection_string(connection_string, "part" + uuid.uuid4().hex[:10]) as table:
        await table.create_table()
        stats = await submit_transactions(table, transactions(data))
        sample = min(SAMPLE, count // 2)
        keys = [(row["PartitionKey"], row["RowKey"]) for row in data[:: max(1, count // (2 * sample))]][: 2 * sample]
        reads = await _rate(keys[:sample], table.get_entity)
        deletes = await _rate(keys[sample:], table.delete_entity)
        await table.delete_table()
    return stats.rows_per_second, reads, deletes


async def _run(sizes: list[int]) -> Table:
    from localdev.azurite import start_azurite

    table = Table(
        f"Azurite: point operations as one partition grows ({CALLERS} callers, {SAMPLE:,} of each; baseline: "
        "the same rows over 256 partitions, same run)",
        ["rows", "layout", "written/s (transactions of 100)", "point reads/s", "deletes/s"],
    )
    for count in sizes:
        for spread in (True, False):
            with tempfile.TemporaryDirectory(prefix="acs-bench-part-") as tmp, start_azurite(location=Path(tmp)) as azurite:
                print(f"   {count} rows, {'256 partitions' if spread else 'one partition'} ...", flush=True)
                written, reads, deletes = await measure(azurite.connection_string, count, spread=spread)
            table.add(count, "256 partitions" if spread else "one partition", f"{written:.0f}", f"{reads:.0f}", f"{deletes:.0f}")
    table.notes.append(
        "Azurite 3.35.0 keeps a table as a LokiJS collection: a lookup by both keys narrows by PartitionKey, then scans "
        "that partition for the RowKey, so each write, read or delete costs time linear in its partition's rows. Real "
        "Table storage indexes both keys. The revocation ledger keeps all requests in one partition; the identity map "
        "spreads over 256."
    )
    return table


def run(ctx: BenchContext) -> list[Table]:
    return [asyncio.run(_run([2_000, 10_000] if ctx.quick else [10_000, 100_000]))]
