"""The sweep, and its raw-SDK baseline, each in a fresh process: the memory they reach is theirs alone.

``python -m bench.sweep_child sweep``: one timer run of the revocation sweep, built as the composition root
builds it (``Services`` from the app's settings in the environment, ``build_sweeper`` over the real ACS,
identity-map and ledger adapters), without a queue (nothing is left over when the budget suffices); if storage
fails while it plans and the run aborts, another run follows (at most 3), as the next timer tick would.

``python -m bench.sweep_child raw IDS_FILE``: the raw async SDK's ``revoke_tokens`` for every id in the file
(one per line, read as it goes), ``REVOCATION_CONCURRENCY`` callers, on a client built by the app's factory.

Each prints one line, ``RESULT={json}``: what was done, the seconds and the CPU seconds it took, and RSS in KiB at the
start (clients built, imports done), at its peak during the run (sampled every 0.1 s, and the kernel's VmHWM) and at
the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from bench.common import rss_kib
from shared.domain.errors import RetryLaterError

PREFIX = "RESULT="
SAMPLE_SECONDS = 0.1
#: a timer run that aborts (storage failed while planning) is followed by another, as the next timer tick would
MAX_TIMER_RUNS = 3


class MemoryWatch:
    """RSS at the start, sampled while ``run`` runs, and at the end; the peak is the larger of samples and VmHWM growth."""

    def __init__(self) -> None:
        self.start_kib, self.start_hwm_kib = rss_kib(os.getpid())
        self.sampled_peak_kib = self.start_kib
        self.end_kib = self.start_kib
        self.end_hwm_kib = self.start_hwm_kib

    async def during(self, work: Awaitable[Any]) -> Any:
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                self.sampled_peak_kib = max(self.sampled_peak_kib, rss_kib(os.getpid())[0])
                try:
                    await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
                except TimeoutError:
                    pass

        sampler = asyncio.create_task(sample())
        try:
            return await work
        finally:
            stop.set()
            await sampler
            self.end_kib, self.end_hwm_kib = rss_kib(os.getpid())

    @property
    def peak_kib(self) -> int:
        """The highest RSS seen during the run (VmHWM counts only when it rose past its value at the start)."""
        hwm = self.end_hwm_kib if self.end_hwm_kib > self.start_hwm_kib else 0
        return max(self.sampled_peak_kib, hwm, self.end_kib)

    def as_json(self) -> dict[str, int]:
        return {"rss_start_kib": self.start_kib, "rss_peak_kib": self.peak_kib, "rss_end_kib": self.end_kib}


async def timer_runs(run_timer: Callable[[], Awaitable[Any]], max_runs: int = MAX_TIMER_RUNS) -> tuple[list[Any], list[str]]:
    """Timer runs until one completes, at most ``max_runs``: (the completed run's summary, or none; the aborted runs).

    A run aborts when storage fails while it plans (say a page of the identity map's query times out): in Azure
    the next timer run carries on, finding what is still due, and so does this.
    """
    completed: list[Any] = []
    aborted: list[str] = []
    for _ in range(max_runs):
        started = time.perf_counter()
        try:
            completed.append(await run_timer())
            break
        except RetryLaterError as error:
            aborted.append(f"{type(error).__name__} after {time.perf_counter() - started:.0f} s")
            print(f"timer run aborted: {aborted[-1]}: {error}", file=sys.stderr, flush=True)
    return completed, aborted


async def sweep() -> dict[str, Any]:
    from shared.composition import Services

    services = Services(dict(os.environ))
    sweeper = services.new_sweeper(queue=None)  # as the app's, less the queue: nothing is left over for it here
    watch = MemoryWatch()
    started = time.perf_counter()
    try:
        cpu = time.process_time()
        completed, aborted = await watch.during(timer_runs(sweeper.run_timer))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        pending, _ = await services.ledger().count_pending()
    finally:
        await services.close()
    return {
        "summary": completed[-1].to_json() if completed else None,
        "aborted_runs": aborted,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "pending": pending,
        **watch.as_json(),
    }


async def revoke_all(revoke: Callable[[str], Awaitable[None]], ids: TextIO, concurrency: int) -> int:
    """``revoke`` each id of ``ids`` (a line each), ``concurrency`` at a time, reading lines as they are needed."""
    done = 0

    async def worker() -> None:
        nonlocal done
        for line in ids:
            if line.strip():
                await revoke(line.strip())
                done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def raw(ids_file: Path) -> dict[str, Any]:
    from azure.communication.identity import CommunicationUserIdentifier

    from shared.adapters.acs import create_client
    from shared.settings import load_acs_settings, load_revocation_settings

    env = dict(os.environ)
    # The sweep's client has azure-core retries off; so has this one (the same factory, the same options).
    client, _ = create_client(load_acs_settings(env), env, retry_total=0)
    concurrency = load_revocation_settings(env).concurrency

    async def revoke(acs_user_id: str) -> None:
        await client.revoke_tokens(CommunicationUserIdentifier(acs_user_id))

    watch = MemoryWatch()
    started = time.perf_counter()
    try:
        cpu = time.process_time()
        with ids_file.open(encoding="ascii") as ids:
            done = await watch.during(revoke_all(revoke, ids, concurrency))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await client.close()
    return {"revoked": done, "seconds": seconds, "cpu_seconds": cpu, **watch.as_json()}


def parse_result(stdout: str) -> dict[str, Any]:
    """The child's RESULT line as a dict; ValueError when it printed none (it failed)."""
    for line in stdout.splitlines():
        if line.startswith(PREFIX):
            value = json.loads(line[len(PREFIX) :])
            if isinstance(value, dict):
                return value
    raise ValueError("the child printed no RESULT line")


def main(argv: list[str]) -> int:
    if argv[:1] == ["sweep"]:
        result = asyncio.run(sweep())
    elif argv[:1] == ["raw"] and len(argv) == 2:
        result = asyncio.run(raw(Path(argv[1])))
    else:
        print("usage: python -m bench.sweep_child sweep | raw IDS_FILE", file=sys.stderr)
        return 2
    print(PREFIX + json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
