"""The fleet run (``python -m bench --only fleet``; not part of the default ``make bench``): several instances behind
HAProxy, mixed load plus a sign-in storm plus an operator campaign, one SIGKILL and one Azurite restart.

The rig (:mod:`localdev.fleet`) starts its own Azurite (on disk, so it can restart) and its own emulator with
ACS's real limits; the bench's shared stand-ins (limits off) are not used. What the figures are measured against,
from the same run: ACS's limits as the emulator enforces them (issue and create 1,000, revoke and delete 500 per
30 s) and the app's ``REVOCATION_RATE_PER_30S``. Everything is recorded per answer by the load driver and checked by
:func:`localdev.fleet.verify.verify_fleet`; the invariants' verdicts are rows of the tables, never assertions.

Scale (``BENCH_FLEET_*`` environment variables override, e.g. ``BENCH_FLEET_INSTANCES=1``): ``--quick`` runs a small
version of the same scenario. ``BENCH_FLEET_WORKDIR=<dir>`` keeps the rig's files (instance and HAProxy logs, the
emulator's SQLite state, Azurite's data) there for a look afterwards.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from bench.common import BenchContext
from bench.report import Table, verdict
from localdev.fleet import Fleet, FleetOptions, start_fleet
from localdev.fleet.load import LoadDriver, Recorder
from localdev.fleet.observe import EmulatorSampler
from localdev.fleet.verify import (
    Report,
    check_timer_once,
    describe_user,
    lock_acquisitions,
    percentile,
    storm_figures,
    timer_runs,
    verify_fleet,
)

#: ACS's per-resource limits per 30 s (learn.microsoft.com, "Service limits for Azure Communication Services")
ACS_LIMITS = {"create": 1000, "issue": 1000, "revoke": 500, "delete": 500}


@dataclass(frozen=True)
class Scenario:
    """When and how much; times are seconds from the start of the load."""

    instances: int = 3
    mixed_users: int = 1200
    ops_per_user: int = 6
    mixed_concurrency: int = 48
    think_seconds: float = 1.0
    storm_users: int = 3000
    storm_within: float = 30.0
    storm_at: float = 10.0
    #: an operator revokes the storm's users (all hold tokens, none revokes itself: every request costs ACS a revoke)
    campaign_users: int = 3000
    campaign_at: float = 100.0
    kill_at: float = 25.0
    restart_after: float = 10.0
    azurite_restart_at: float = 60.0
    client_deadline: float = 300.0
    revocation_rate_per_30s: int = 400
    schedule: str = "*/30 * * * * *"
    sweep_budget_seconds: int = 20
    batch_size: int = 100

    @classmethod
    def for_run(cls, quick: bool) -> Scenario:
        base = cls()
        if quick:
            base = replace(
                base, mixed_users=150, mixed_concurrency=16, storm_users=300, storm_within=10.0, storm_at=3.0,
                campaign_users=300, campaign_at=20.0, kill_at=6.0, restart_after=4.0, azurite_restart_at=14.0,
            )  # fmt: skip
        overrides: dict[str, Any] = {}
        for spec in fields(cls):
            raw = os.environ.get(f"BENCH_FLEET_{spec.name.upper()}")
            if raw:
                overrides[spec.name] = type(getattr(base, spec.name))(raw)
        return replace(base, **overrides)

    def fleet_options(self) -> FleetOptions:
        return FleetOptions(
            instances=self.instances,
            schedule=self.schedule,
            app_settings={
                "REVOCATION_RATE_PER_30S": str(self.revocation_rate_per_30s),
                "REVOCATION_TIME_BUDGET_SECONDS": str(self.sweep_budget_seconds),
                "REVOCATION_BATCH_SIZE": str(self.batch_size),
            },
        )


async def _at(recorder: Recorder, moment: float) -> None:
    delay = moment - recorder.now()
    if delay > 0:
        await asyncio.sleep(delay)


async def _faults(fleet: Fleet, recorder: Recorder, scenario: Scenario) -> dict[str, Any]:
    """SIGKILL the timer's holder, restart it, restart Azurite; how long each took to take effect."""
    timings: dict[str, Any] = {}
    await _at(recorder, scenario.kill_at)
    holder = fleet.timer_holder() or fleet.names[0]
    index = fleet.names.index(holder)
    timings["killed"] = holder
    recorder.mark(f"kill {holder}")
    killed_at = time.time()
    timings["kill_to_out_s"] = await asyncio.to_thread(fleet.kill, index)
    await asyncio.sleep(scenario.restart_after)
    timings["restart_to_in_s"] = await asyncio.to_thread(fleet.restart, index)
    recorder.mark(f"restarted {holder}")
    await _at(recorder, scenario.azurite_restart_at)
    recorder.mark("azurite down")
    timings["azurite_away_s"] = await asyncio.to_thread(fleet.restart_azurite)
    recorder.mark("azurite up")
    timings["killed_at"] = killed_at
    return timings


async def _drive(fleet: Fleet, recorder: Recorder, scenario: Scenario) -> dict[str, Any]:
    from localdev.fleet.load import ClientPolicy

    policy = ClientPolicy(deadline_seconds=scenario.client_deadline)
    mixed_users = [f"m-{index}" for index in range(scenario.mixed_users)]
    async with LoadDriver(fleet.url, recorder, policy=policy, connections=1000) as driver:

        async def storm() -> None:
            await _at(recorder, scenario.storm_at)
            await driver.storm("storm", scenario.storm_users, scenario.storm_within)

        async def campaign() -> None:
            await _at(recorder, scenario.campaign_at)
            await driver.campaign([f"storm-{index}" for index in range(min(scenario.campaign_users, scenario.storm_users))])

        mixed = driver.mixed(
            mixed_users, scenario.ops_per_user, concurrency=scenario.mixed_concurrency, think_seconds=scenario.think_seconds
        )
        _, _, _, timings = await asyncio.gather(mixed, storm(), campaign(), _faults(fleet, recorder, scenario))
    return timings


def _answers_table(recorder: Recorder, report: Report, elapsed: float) -> Table:
    table = Table("fleet: every answer through the balancer", ["operation", "status", "body", "answers", "share"])
    total = len(recorder.answers)
    for key, count in report.figures["answers"].items():
        op, status, shape = key.split(" ", 2)
        table.add(op, status, shape, count, f"{100 * count / total:.1f} %")
    table.notes.append(f"{total} answers in {elapsed:.0f} s ({total / elapsed:.0f}/s) from {len(recorder.users)} users")
    return table


def _storm_table(recorder: Recorder, scenario: Scenario) -> Table:
    figures = storm_figures(recorder.outcomes, recorder.answers, "storm")
    table = Table(
        f"fleet: storm of {scenario.storm_users} new users within {scenario.storm_within:.0f} s "
        "(clients honour Retry-After + jitter)",
        ["measure", "value"],
    )
    table.add(
        "clients that got their token",
        f"{figures['got_token']} of {figures['clients']} ({figures['first_try']} at the first try)",
    )
    table.add(
        "time to token p50 / p99 / max",
        f"{figures['time_to_token_p50_s']} / {figures['time_to_token_p99_s']} / {figures['time_to_token_max_s']} s",
    )
    table.add("429 answers to storm clients", figures["answers_429"])
    table.add("time to a 429 p50 / p99", f"{figures['time_to_429_p50_s']} / {figures['time_to_429_p99_s']} s")
    table.add("attempts per client (mean)", figures["attempts_mean"])
    windows = -(-scenario.storm_users // ACS_LIMITS["create"])
    table.notes.append(
        f"floor from ACS's limit alone: {ACS_LIMITS['create']} identities per 30 s, "
        f"so the last of {scenario.storm_users} new users "
        f"cannot have a token before about {30 * (windows - 1):.0f} s after the first (more while the mixed load creates too)"
    )
    return table


def _acs_table(sampler: EmulatorSampler, scenario: Scenario) -> Table:
    table = Table(
        "fleet: what ACS (the emulator) received per 30 s",
        ["operation", "max requests in any 30 s", "max successes in any 30 s", "ACS limit", "429s", "per 30 s slice (requests)"],
    )
    success = {"create": "201", "issue": "200", "revoke": "204", "delete": "204"}
    for op, limit in ACS_LIMITS.items():
        throttled = sampler.counter(f"{op}:429", "statuses")
        table.add(
            op,
            sampler.max_in_window(op),
            sampler.max_in_window(f"{op}:{success[op]}", "statuses"),
            limit,
            throttled[-1][1] if throttled else 0,
            " ".join(str(n) for n in sampler.per_window(op)),
        )
    table.notes.append(
        f"REVOCATION_RATE_PER_30S={scenario.revocation_rate_per_30s} (the sweep's and queue batches' share); "
        "user revokes are not paced"
    )
    return table


def _faults_table(fleet: Fleet, recorder: Recorder, timings: dict[str, Any]) -> Table:
    marks = {what: at for at, what in recorder.marks}
    table = Table("fleet: faults", ["event", "measure", "value"])
    kill_mark = marks[f"kill {timings['killed']}"]
    table.add(
        f"SIGKILL {timings['killed']} (the timer's holder)", "until HAProxy took it out", f"{timings['kill_to_out_s']:.2f} s"
    )
    table.add("", "restart until back in the pool", f"{timings['restart_to_in_s']:.2f} s")
    table.add("", "answers sent in the 3 s after the kill", _statuses(recorder, kill_mark, kill_mark + 3))
    takeover = [at for at, _ in lock_acquisitions(fleet) if at > timings["killed_at"]]
    table.add("", "timer taken over after", f"{takeover[0] - timings['killed_at']:.1f} s" if takeover else "not yet")
    table.add("Azurite restart (data on disk)", "storage away", f"{timings['azurite_away_s']:.2f} s")
    table.add("", "answers sent while away and 3 s after", _statuses(recorder, marks["azurite down"], marks["azurite up"] + 3))
    runs = timer_runs(fleet)
    problems = check_timer_once(runs, killed={timings["killed"]})
    table.add(
        "revocation timer", "occurrences / on one instance each", f"{len({r.occurrence for r in runs})} / {verdict(not problems)}"
    )
    return table


def _statuses(recorder: Recorder, start: float, end: float) -> str:
    counts = Counter(a.status for a in recorder.answers if start <= a.sent <= end)
    return ", ".join(f"{status}: {count}" for status, count in sorted(counts.items())) or "none"


def _invariants_table(report: Report) -> Table:
    table = Table("fleet: invariants", ["invariant", "verdict", "detail"])
    figures = report.figures
    orphans = figures["orphans"]
    details = {
        "answers": "success, or 429/503 with Retry-After and a JSON body",
        "clients": ", ".join(f"{op} {f['succeeded']}/{f['operations']}" for op, f in figures["operations"].items()),
        "settled": f"pending requests after the sweep: {figures['pending_after_settle']}",
        "orphans": f"{orphans['orphans']} orphans ({orphans['created_shortly_before_a_kill']} created just before a kill, "
        f"{orphans['failed_cleanups_logged']} failed cleanups logged)",
        "revocations": (
            f"{figures['revocations']['still_valid']} of {figures['revocations']['tokens_checked']} doomed tokens still valid"
        ),
        "identities": ", ".join(f"{n} x {what}" for what, n in figures["identity_anomalies"].items()) or "consistent",
    }
    for name, found in report.problems.items():
        table.add(name, verdict(not found, f"{len(found)} kinds"), details[name])
        table.notes += [f"{name}: {problem}" for problem in found[:3]]
    return table


def _latency_table(recorder: Recorder) -> Table:
    table = Table("fleet: answer latency through the balancer (ms)", ["operation", "answers", "p50", "p99", "max"])
    by_op: dict[str, list[float]] = {}
    for answer in recorder.answers:
        if answer.status in (200, 202, 204):
            by_op.setdefault(answer.op, []).append(answer.latency * 1000)
    for op, values in sorted(by_op.items()):
        table.add(op, len(values), f"{statistics.median(values):.0f}", f"{percentile(values, 99):.0f}", f"{max(values):.0f}")
    return table


def _write_details(workdir: Path, recorder: Recorder, report: Report) -> None:
    """The histories of (up to 10 per invariant) users behind a violation, beside the rig's logs."""
    sections = [
        f"== {invariant}\n" + "\n".join(describe_user(recorder, user) for user in users[:10])
        for invariant, users in report.users.items()
        if users
    ]
    if sections:
        (workdir / "violations.txt").write_text("\n\n".join(sections) + "\n", encoding="utf-8")


@contextmanager
def _workdir() -> Iterator[Path]:
    kept = os.environ.get("BENCH_FLEET_WORKDIR")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        yield Path(kept)
        return
    with tempfile.TemporaryDirectory(prefix="acs-fleet-") as tmp:
        yield Path(tmp)


def run(ctx: BenchContext) -> list[Table]:
    scenario = Scenario.for_run(ctx.quick)
    with _workdir() as workdir, start_fleet(workdir, scenario.fleet_options()) as fleet:
        with EmulatorSampler(fleet.emulator) as sampler:
            recorder = Recorder()
            started = time.monotonic()
            timings = asyncio.run(_drive(fleet, recorder, scenario))
            elapsed = time.monotonic() - started
            report = verify_fleet(fleet, recorder, settle_timeout=600)
        _write_details(workdir, recorder, report)
        tables = [
            _answers_table(recorder, report, elapsed),
            _storm_table(recorder, scenario),
            _acs_table(sampler, scenario),
            _faults_table(fleet, recorder, timings),
            _latency_table(recorder),
            _invariants_table(report),
        ]
    tables[0].notes.append(
        f"{scenario.instances} instances, {scenario.mixed_users} mixed users x {scenario.ops_per_user} operations "
        f"(concurrency {scenario.mixed_concurrency}), storm of {scenario.storm_users} at {scenario.storm_at:.0f} s, "
        f"operator campaign revoking {scenario.campaign_users} storm users at {scenario.campaign_at:.0f} s, "
        f"kill at {scenario.kill_at:.0f} s, "
        f"Azurite restart at {scenario.azurite_restart_at:.0f} s"
    )
    return tables
