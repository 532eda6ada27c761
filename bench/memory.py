"""Memory: RSS of a worker process after 10k and 50k token requests, against the raw SDK in a twin process.

Each side runs in its own fresh subprocess (so one cannot inherit the other's heap): the worker calls
``issue_token`` in process with ``func.HttpRequest`` for 1,000 users in turn (8 callers at a time;
the first round creates their identities), the baseline calls the raw async SDK ``get_token`` the
same number of times. RSS is read from /proc after the warm-up, at the first checkpoint and at the
last; growth between the two checkpoints is what a leak would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.common import ROOT, BenchContext
from bench.report import Table, verdict

CHILD = r"""
import asyncio, gc, json, sys
from datetime import timedelta
from bench.common import InProcessApp, rss_kib
mode, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
USERS = 1000
BODY = {"scopes": ["voip"], "expiresInMinutes": 60}

def point(label, done):
    gc.collect()
    rss, peak = rss_kib(__import__("os").getpid())
    print("MEM=" + json.dumps({"label": label, "requests": done, "rss_kib": rss, "peak_kib": peak}), flush=True)

async def main():
    from shared.adapters.acs import create_client
    from azure.communication.identity import CommunicationUserIdentifier
    app = InProcessApp()
    client, _ = create_client(app.services.acs_settings, app.services.env)
    acs_id = CommunicationUserIdentifier((await client.create_user()).properties["id"])
    expiry = timedelta(minutes=60)
    if mode == "shipped":
        async def one(i):
            await app.issue(f"mem-user-{i % USERS}", BODY)
    else:
        async def one(i):
            await client.get_token(acs_id, ["voip"], token_expires_in=expiry)
    done = 0
    async def run(count):
        nonlocal done
        queue = iter(range(done, done + count))
        async def caller():
            for i in queue:
                await one(i)
        await asyncio.gather(*(caller() for _ in range(8)))
        done += count
    await run(200)
    point("warm", done)
    await run(first - done)
    point("first", done)
    await run(last - done)
    point("last", done)
    await client.close()
    await app.close()

asyncio.run(main())
"""


def _child(mode: str, first: int, last: int, env: dict[str, str]) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(first), str(last)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    points = {}
    for line in result.stdout.splitlines():
        if line.startswith("MEM="):
            data = json.loads(line[4:])
            points[data["label"]] = data
    if set(points) != {"warm", "first", "last"}:
        raise RuntimeError(f"memory child ({mode}) failed:\n{result.stderr[-2000:]}")
    return points


def run(ctx: BenchContext) -> list[Table]:
    first, last = ctx.scaled(10_000, 1_000), ctx.scaled(50_000, 5_000)
    env = {**os.environ, **ctx.app_env(), "PYTHONPATH": str(ROOT)}
    raw = _child("raw", first, last, env)
    shipped = _child("shipped", first, last, env)
    mib = lambda kib: kib / 1024  # noqa: E731
    table = Table(
        f"Worker memory (RSS, MiB) after {first:,} and {last:,} requests",
        [
            "process",
            "after warm-up",
            f"after {first:,}",
            f"peak at {first:,} (VmHWM)",
            f"after {last:,}",
            f"peak at {last:,}",
            f"growth {first:,}→{last:,}",
            "per 1k requests",
        ],
    )
    per_k = {}
    for label, points in (("raw async SDK get_token (baseline)", raw), ("issue_token in process, 1,000 users", shipped)):
        growth = mib(points["last"]["rss_kib"] - points["first"]["rss_kib"])
        per_k[label] = growth / ((last - first) / 1000)
        table.add(
            label,
            mib(points["warm"]["rss_kib"]),
            mib(points["first"]["rss_kib"]),
            mib(points["first"]["peak_kib"]),
            mib(points["last"]["rss_kib"]),
            mib(points["last"]["peak_kib"]),
            f"{growth:+.1f}",
            f"{per_k[label] * 1024:+.0f} KiB",
        )
    shipped_growth = mib(shipped["last"]["rss_kib"] - shipped["first"]["rss_kib"])
    raw_growth = mib(raw["last"]["rss_kib"] - raw["first"]["rss_kib"])
    bounded = shipped_growth <= max(5.0, raw_growth + 5.0)
    table.notes.append(
        f"Bounded growth (shipped within 5 MiB of the raw SDK's growth over the same requests): "
        f"{verdict(bounded, f'shipped {shipped_growth:+.1f} MiB vs raw {raw_growth:+.1f} MiB')}. "
        f"The worker's per-user cache is an LRU of bounded size; 1,000 users fit in it."
    )
    table.notes.append(
        f"Both processes import the app and build its clients; the difference after {last:,} requests, "
        f"{mib(shipped['last']['rss_kib'] - raw['last']['rss_kib']):+.1f} MiB, is what serving requests keeps "
        f"(the per-user cache, the Table client's pool, handler state)."
    )
    return [table]
