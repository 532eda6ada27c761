"""bench/sweep_child.py: the RESULT line, the raw baseline's streaming of ids, and how peak memory is read.

Unit tests: no stand-ins and no sockets (RSS comes from /proc/self, as in the benchmark).
"""

from __future__ import annotations

import asyncio
import io

import pytest

from bench.sweep_child import PREFIX, MemoryWatch, parse_result, revoke_all, timer_runs
from shared.domain.errors import InvalidRequestError, UnavailableError


def test_parse_result_finds_the_line_among_others() -> None:
    out = f'noise\n{PREFIX}{{"revoked": 3, "seconds": 1.5}}\nmore noise\n'
    assert parse_result(out) == {"revoked": 3, "seconds": 1.5}


@pytest.mark.parametrize("out", ["", "RESULT=[1, 2]\n", "no result here\n"])
def test_parse_result_refuses_a_child_that_printed_none(out: str) -> None:
    with pytest.raises(ValueError, match="no RESULT"):
        parse_result(out)


async def test_revoke_all_calls_each_id_once_with_bounded_concurrency() -> None:
    seen: list[str] = []
    running = 0
    most = 0

    async def revoke(acs_user_id: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        seen.append(acs_user_id)
        running -= 1

    ids = io.StringIO("".join(f"8:acs:r_{i}\n" for i in range(100)) + "\n\n")
    done = await revoke_all(revoke, ids, concurrency=7)

    assert done == 100
    assert sorted(seen) == sorted(f"8:acs:r_{i}" for i in range(100))
    assert most == 7


async def test_memory_watch_sees_growth_during_the_run() -> None:
    watch = MemoryWatch()
    hold: list[bytes] = []

    async def grow() -> str:
        hold.append(b"\x01" * (64 * 1024 * 1024))  # 64 MiB written, so every page is resident
        await asyncio.sleep(0.3)  # long enough for a sample or two
        return "done"

    assert await watch.during(grow()) == "done"
    assert watch.peak_kib - watch.start_kib >= 48 * 1024
    assert watch.as_json()["rss_peak_kib"] == watch.peak_kib
    hold.clear()


def test_memory_watch_ignores_a_peak_reached_before_the_start() -> None:
    watch = MemoryWatch()
    watch.start_kib, watch.start_hwm_kib = 100_000, 500_000  # e.g. the peak was during imports
    watch.sampled_peak_kib, watch.end_kib, watch.end_hwm_kib = 120_000, 110_000, 500_000
    assert watch.peak_kib == 120_000
    watch.end_hwm_kib = 600_000  # the run itself pushed the high-water mark up: that counts
    assert watch.peak_kib == 600_000


async def test_an_aborted_timer_run_is_followed_by_another() -> None:
    outcomes: list[object] = [UnavailableError("Identity storage is unavailable; retry later.", retry_after=5), "summary"]

    async def run_timer() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    completed, aborted = await timer_runs(run_timer)
    assert completed == ["summary"]
    assert len(aborted) == 1
    assert aborted[0].startswith("UnavailableError after ")


async def test_timer_runs_give_up_after_their_count() -> None:
    calls = 0

    async def run_timer() -> object:
        nonlocal calls
        calls += 1
        raise UnavailableError("down", retry_after=5)

    completed, aborted = await timer_runs(run_timer, max_runs=3)
    assert (completed, len(aborted), calls) == ([], 3, 3)


async def test_timer_runs_do_not_hide_a_bug() -> None:
    async def run_timer() -> object:
        raise InvalidRequestError("not transient", code="invalid_body")

    with pytest.raises(InvalidRequestError):
        await timer_runs(run_timer)
