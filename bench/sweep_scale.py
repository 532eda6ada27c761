"""The revocation sweep at 10,000 and at 100,000 identities in one run: throughput and peak memory, beside the raw SDK.

Part of ``make bench`` (alone: ``python -m bench --only sweep_scale``; sizes from ``BENCH_SWEEP_SCALE_SIZES``,
default ``10000,100000``; ``--quick``: 1,000 and 5,000). Both sizes take about 8 minutes on the 2-core development machine.

Its own Azurite (in memory) and emulator (limits off), fresh, so that nothing earlier benchmarks left behind
weighs on them. Per size, in this order:

1. Seed: N identities created through the emulator's API, and their identity-map rows written through Azurite's
   Table API in retried transactions (``bench/seeding.py`` says why that is fast and reliable). Every user's last
   token was issued 2 hours ago (still alive: the app grants tokens up to 24 hours), and ``MAX_SESSION_HOURS=1``:
   each is due for the sweep's session policy.
2. Baseline, in a fresh process: the raw async SDK's ``revoke_tokens`` for all N identities, 16 callers, no
   retries (the sweep's client options): what ACS (here the emulator) and the SDK can do, and the memory that takes.
3. The sweep, in a fresh process: one timer run of ``build_sweeper`` over the real adapters, built from the app's
   settings as the composition root builds it; 16 workers, rate setting at its maximum (100,000 per 30 s), time
   budget 3,600 s. It plans with one filtered pass over the identity map (pages of 1,000), re-reads each row,
   revokes in ACS and records ``LastRevokedAt``: 1 ACS call and 2 Table round trips per identity.
4. Checks: the sweep's summary, the emulator's count of revokes it answered 204, and no identity left due.

Why the session policy and not ledger requests (what ``bench/sweep.py`` seeds at 10,000): the ledger keeps every
request in one partition, and Azurite's cost per write and point read grows with its partition (``--only
azurite_partition``: about 50 point reads/s at 100,000 rows, 880/s at 10,000), so a 100,000-request run would
time Azurite, not the sweep. The identity map's 256 partitions keep Azurite's cost per row the same at both sizes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import EMULATOR_NO_LIMITS, ROOT, BenchContext, base_env, cpu_seconds
from bench.report import Table, verdict
from bench.seeding import create_identities, identity_entity, progress_printer, submit_transactions, transactions
from bench.sweep_child import parse_result

CONCURRENCY = 16
SESSION_HOURS = 1
#: each seeded user's last token is this old: over the session limit, within the 24-hour token lifetime
LAST_ISSUED_HOURS_AGO = 2
CHILD_TIMEOUT_SECONDS = 4 * 3600
MIB = 1024


@dataclass
class SizeResult:
    """One size's figures, raw baseline and sweep from the same seeded data."""

    count: int
    seed_seconds: float
    seed_retries: int
    raw: dict[str, Any]
    sweep: dict[str, Any]
    acs_revokes: int
    still_due: int
    #: CPU seconds the stand-ins spent while each child ran: {"raw"|"sweep": {"azurite": s, "emulator": s}}
    stand_in_cpu: dict[str, dict[str, float]] = field(default_factory=dict)

    def cpu_ms_per_identity(self, side: str) -> tuple[float, float, float]:
        """(the child process, Azurite, the emulator): CPU milliseconds per identity revoked during ``side``."""
        data = self.sweep if side == "sweep" else self.raw
        others = self.stand_in_cpu.get(side, {})
        per = 1000 / self.count
        return data.get("cpu_seconds", 0.0) * per, others.get("azurite", 0.0) * per, others.get("emulator", 0.0) * per


def sizes(ctx: BenchContext) -> list[int]:
    configured = os.environ.get("BENCH_SWEEP_SCALE_SIZES", "")
    chosen = [int(n) for n in configured.split(",") if n.strip()]
    return chosen or ([1_000, 5_000] if ctx.quick else [10_000, 100_000])


def child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``python -m bench.sweep_child ARGS`` and return its RESULT (RuntimeError with its stderr tail if it failed)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.sweep_child", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    try:
        return parse_result(result.stdout)
    except ValueError:
        raise RuntimeError(f"bench.sweep_child {args[0]} exited {result.returncode}: {result.stderr[-1500:]}") from None


async def seed(azurite: Any, client: Any, table_name: str, count: int, resource: str) -> tuple[list[str], float, int]:
    """N identities in the emulator and their session-due rows in ``table_name``: (ids, seconds, retried transactions)."""
    from azure.data.tables.aio import TableClient

    from shared.domain.clock import utc_now

    started = time.perf_counter()
    ids = await create_identities(client, count, concurrency=CONCURRENCY)
    print(f"   {count} identities created in the emulator ({time.perf_counter() - started:.0f} s)", flush=True)
    when = utc_now() - timedelta(hours=LAST_ISSUED_HOURS_AGO)
    rows = (identity_entity(i, acs_id, created_at=when, last_issued_at=when, resource=resource) for i, acs_id in enumerate(ids))
    async with TableClient.from_connection_string(azurite.connection_string, table_name) as table:
        await table.create_table()
        stats = await submit_transactions(table, transactions(rows), progress=progress_printer(count, "identity rows"))
    print(f"   {stats.rows} rows written ({stats.rows_per_second:.0f}/s, {stats.retries} transactions retried)", flush=True)
    return ids, time.perf_counter() - started, stats.retries


async def still_due(azurite: Any, table_name: str) -> int:
    """Mapping rows the session policy would still pick (issued after, or never, revoked): 0 after a complete sweep.

    Only mappings: the reverse index shares the table (partitions ``i…``), and the sweep's repair pass writes
    INDEX_REPAIR_PER_RUN entries per run for seeded rows, which have no LastIssuedAt to compare.
    """
    from azure.data.tables.aio import TableClient

    count = 0
    async with TableClient.from_connection_string(azurite.connection_string, table_name) as table:
        mappings = table.query_entities("PartitionKey lt 'i'", select=["LastIssuedAt", "LastRevokedAt"], results_per_page=1000)
        async for entity in mappings:
            revoked = entity.get("LastRevokedAt")
            if revoked is None or revoked < entity["LastIssuedAt"]:
                count += 1
        await table.delete_table()  # frees Azurite's memory before the next size
    return count


def revokes_answered(emulator: Any) -> int:
    return int(emulator.stats()["statuses"].get("revoke:204", 0))


async def measure_size(azurite: Any, emulator: Any, count: int, workdir: Path) -> SizeResult:
    from shared.adapters.acs import create_client
    from shared.settings import load_acs_settings

    env = base_env(azurite, emulator)
    acs_settings = load_acs_settings(env)
    table_name = "scale" + uuid.uuid4().hex[:10]
    # Seeding uses the SDK's default retries (a dropped keep-alive connection is retried).
    client, _ = create_client(acs_settings, env, retry_total=3)
    try:
        ids, seed_seconds, seed_retries = await seed(azurite, client, table_name, count, acs_settings.resource)
    finally:
        await client.close()
    ids_file = workdir / f"ids-{count}.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="ascii")
    del ids
    child_env = {
        **env,
        "IDENTITY_TABLE_NAME": table_name,
        "REVOCATION_TABLE_NAME": "scaler" + uuid.uuid4().hex[:10],
        "REVOCATION_RATE_PER_30S": "100000",
        "REVOCATION_CONCURRENCY": str(CONCURRENCY),
        "REVOCATION_TIME_BUDGET_SECONDS": "3600",
        "MAX_SESSION_HOURS": str(SESSION_HOURS),
    }
    stand_ins = {"azurite": azurite.processes[0].pid, "emulator": emulator.process.pid}
    stand_in_cpu: dict[str, dict[str, float]] = {}

    def timed_child(side: str, args: list[str]) -> dict[str, Any]:
        before = {name: cpu_seconds(pid) for name, pid in stand_ins.items()}
        result = child(args, child_env)
        stand_in_cpu[side] = {name: cpu_seconds(pid) - before[name] for name, pid in stand_ins.items()}
        return result

    print(f"   raw SDK revoke_tokens x {count} ...", flush=True)
    raw = timed_child("raw", ["raw", str(ids_file)])
    answered = revokes_answered(emulator)
    print(f"   sweeping {count} ...", flush=True)
    sweep = timed_child("sweep", ["sweep"])
    acs_revokes = revokes_answered(emulator) - answered
    due = await still_due(azurite, table_name)
    emulator.reset(state=True)  # frees the emulator's identities and call logs before the next size
    ids_file.unlink()
    return SizeResult(count, seed_seconds, seed_retries, raw, sweep, acs_revokes, due, stand_in_cpu)


def _mib(kib: int) -> float:
    return kib / MIB


def table_of(results: list[SizeResult], failures: list[tuple[int, str]]) -> Table:
    table = Table(
        f"Revocation sweep at scale: session policy, one timer run, {CONCURRENCY} workers, emulator limits off "
        "(each size seeded, then the raw SDK and the sweep in fresh processes)",
        [
            "identities",
            "raw SDK revoke/s",
            "sweep revoked/s",
            "vs raw",
            "sweep seconds",
            "sweep RSS at start MiB",
            "sweep peak RSS growth MiB",
            "raw SDK peak RSS growth MiB",
            "CPU ms per identity, sweep: itself / Azurite / emulator",
            "CPU ms per revoke, raw SDK: itself / emulator",
            "revoked / ACS 204s / still due",
            "timer runs",
            "seeding s (retries)",
        ],
    )
    for r in results:
        summary = r.sweep.get("summary") or {}
        aborted = r.sweep.get("aborted_runs") or []
        raw_rps = r.raw["revoked"] / r.raw["seconds"]
        sweep_rps = r.acs_revokes / r.sweep["seconds"]
        table.add(
            r.count,
            f"{raw_rps:.0f}",
            f"{sweep_rps:.0f}",
            f"{sweep_rps / raw_rps:.0%}",
            f"{r.sweep['seconds']:.0f}",
            f"{_mib(r.sweep['rss_start_kib']):.1f}",
            f"{_mib(r.sweep['rss_peak_kib'] - r.sweep['rss_start_kib']):.1f}",
            f"{_mib(r.raw['rss_peak_kib'] - r.raw['rss_start_kib']):.1f}",
            " / ".join(f"{ms:.2f}" for ms in r.cpu_ms_per_identity("sweep")),
            " / ".join(f"{ms:.2f}" for ms in r.cpu_ms_per_identity("raw")[::2]),
            f"{summary.get('revoked', '-')} / {r.acs_revokes} / {r.still_due}",
            f"{len(aborted) + bool(summary)}" + (f" ({len(aborted)} aborted: {'; '.join(aborted)})" if aborted else ""),
            f"{r.seed_seconds:.0f} ({r.seed_retries})",
        )
    for count, error in failures:
        table.add(count, "-", "-", "-", "-", "-", "-", "-", "-", "-", f"failed: {error}"[:100], "-", "-")
    if len(results) >= 2:
        small, large = results[0], results[-1]

        def growth(r: SizeResult, side: str) -> float:
            data = r.sweep if side == "sweep" else r.raw
            return _mib(data["rss_peak_kib"] - data["rss_start_kib"])

        extra = growth(large, "sweep") - growth(small, "sweep")
        extra_raw = growth(large, "raw") - growth(small, "raw")
        per_1k = extra * 1024 / ((large.count - small.count) / 1000)
        flat = abs(extra - extra_raw) <= 5
        table.notes.append(
            f"Memory from {small.count:,} to {large.count:,} identities: the sweep's peak growth changes by {extra:+.1f} MiB "
            f"({per_1k:+.0f} KiB per 1,000 more), the raw SDK's by {extra_raw:+.1f} MiB: "
            f"{verdict(flat, 'more than 5 MiB beyond the raw SDK')} for 'flat as N grows' (within 5 MiB of the raw SDK's change)."
        )
    if results:
        r = results[-1]
        sweep_own, sweep_azurite, sweep_emulator = r.cpu_ms_per_identity("sweep")
        raw_own, _, raw_emulator = r.cpu_ms_per_identity("raw")
        table.notes.append(
            f"Where the gap to raw goes ({r.count:,} identities): per identity the sweep process used {sweep_own:.2f} ms of CPU "
            f"(the raw SDK {raw_own:.2f} ms per revoke), Azurite {sweep_azurite:.2f} ms and the emulator {sweep_emulator:.2f} ms "
            f"({raw_emulator:.2f} ms for the raw run). All of it shares 2 cores (with other work on the machine), so the sweep's "
            "rate is bounded by the CPU its 3 SDK round trips per identity cost in Python, then by Azurite's."
        )
    table.notes += [
        "Each identity costs the sweep 1 ACS call and 2 Table round trips (re-read the row, record LastRevokedAt), plus its "
        "share of the planning query's pages; the raw baseline is the ACS call alone.",
        "Sweep revoked/s = the revokes ACS (the emulator) answered 204 while the sweep's process ran, over its seconds. "
        "Revoked = the completed timer run's summary (a run that aborts, when storage fails while it plans, is followed "
        "by another, as the next timer tick would; its revokes count in ACS 204s only); still due = rows whose "
        "LastRevokedAt is missing or older than LastIssuedAt afterwards (0: nothing lost).",
    ]
    return table


async def _run(ctx: BenchContext) -> list[Table]:
    from localdev.azurite import start_azurite
    from localdev.emulator_process import start_emulator

    results: list[SizeResult] = []
    failures: list[tuple[int, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="acs-bench-scale-") as tmp,
        start_azurite(location=Path(tmp) / "azurite") as azurite,
        start_emulator(*EMULATOR_NO_LIMITS, cert_dir=Path(tmp)) as emulator,
    ):
        for count in sizes(ctx):
            started = time.perf_counter()
            print(f"   -- {count} identities", flush=True)
            try:
                results.append(await measure_size(azurite, emulator, count, Path(tmp)))
            except Exception as error:  # noqa: BLE001 - one failed size must not lose the other's figures
                print(f"   {count} failed: {type(error).__name__}: {error}", flush=True)
                failures.append((count, f"{type(error).__name__}: {str(error).splitlines()[-1] if str(error) else ''}"))
            print(f"   ({count}: {time.perf_counter() - started:.0f} s)", flush=True)
    return [table_of(results, failures)]


def run(ctx: BenchContext) -> list[Table]:
    return asyncio.run(_run(ctx))
