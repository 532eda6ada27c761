"""bench/sweep_scale.py: the scale table from figures (throughput vs raw, memory growth vs raw, failures). Unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from bench.sweep_scale import SizeResult, table_of


def size(
    count: int, *, sweep_growth_kib: int, raw_growth_kib: int, revoked: int | None = None, aborted: list[str] | None = None
) -> SizeResult:
    revoked = count if revoked is None else revoked
    sweep: dict[str, Any] = {
        "summary": {"revoked": revoked - 400 if aborted else revoked},
        "aborted_runs": aborted or [],
        "seconds": count / 400,
        "rss_start_kib": 40_000,
        "rss_peak_kib": 40_000 + sweep_growth_kib,
    }
    raw: dict[str, Any] = {
        "revoked": count,
        "seconds": count / 2000,
        "rss_start_kib": 30_000,
        "rss_peak_kib": 30_000 + raw_growth_kib,
    }
    sweep["cpu_seconds"] = count * 0.002
    raw["cpu_seconds"] = count * 0.0004
    cpu = {"sweep": {"azurite": count * 0.001, "emulator": count * 0.0002}, "raw": {"azurite": 0.0, "emulator": count * 0.0002}}
    return SizeResult(count, 10.0, 0, raw, sweep, acs_revokes=revoked, still_due=count - revoked, stand_in_cpu=cpu)


def test_rows_compare_with_the_raw_sdk() -> None:
    table = table_of([size(10_000, sweep_growth_kib=8_192, raw_growth_kib=6_144)], [])
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["raw SDK revoke/s"] == "2000"
    assert row["sweep revoked/s"] == "400"
    assert row["vs raw"] == "20%"
    assert row["sweep peak RSS growth MiB"] == "8.0"
    assert row["raw SDK peak RSS growth MiB"] == "6.0"
    assert row["revoked / ACS 204s / still due"] == "10000 / 10000 / 0"
    assert row["timer runs"] == "1"
    assert row["CPU ms per identity, sweep: itself / Azurite / emulator"] == "2.00 / 1.00 / 0.20"
    assert row["CPU ms per revoke, raw SDK: itself / emulator"] == "0.40 / 0.20"
    assert any(
        "the sweep process used 2.00 ms of CPU (the raw SDK 0.40 ms per revoke), Azurite 1.00 ms" in n for n in table.notes
    )


@pytest.mark.parametrize(
    "large_growth_kib, difference, verdict",
    [(10_240, "+2.0 MiB", ": met for"), (40_960, "+32.0 MiB", "**missed**")],
    ids=["flat memory is met within 5 MiB of the raw SDK", "growing memory is missed"],
)
def test_memory_growth_is_judged_against_the_raw_sdk(large_growth_kib: int, difference: str, verdict: str) -> None:
    table = table_of(
        [
            size(10_000, sweep_growth_kib=8_192, raw_growth_kib=6_144),
            size(100_000, sweep_growth_kib=large_growth_kib, raw_growth_kib=6_144),
        ],
        [],
    )
    assert difference in table.notes[0]
    assert verdict in table.notes[0]


def test_a_failed_size_keeps_its_row() -> None:
    table = table_of([size(10_000, sweep_growth_kib=1, raw_growth_kib=1)], [(100_000, "RuntimeError: seeding broke")])
    assert table.rows[1][0] == "100000"
    assert "failed: RuntimeError: seeding broke" in table.rows[1]
    assert len(table.rows[1]) == len(table.columns)
    assert not any("Memory from" in note for note in table.notes)


def test_an_aborted_timer_run_is_shown_and_its_revokes_still_count() -> None:
    table = table_of([size(10_000, sweep_growth_kib=1, raw_growth_kib=1, aborted=["UnavailableError after 95 s"])], [])
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["timer runs"] == "2 (1 aborted: UnavailableError after 95 s)"
    assert row["revoked / ACS 204s / still due"] == "9600 / 10000 / 0"
    assert row["sweep revoked/s"] == "400"
