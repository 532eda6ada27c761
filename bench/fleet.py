"""The fleet run (part of ``make bench``; ``python -m bench --only fleet`` alone): instances behind HAProxy,
mixed load plus a sign-in storm plus an operator's incident campaign, one SIGKILL and one Azurite restart.

Each *variant* is the same scenario on a fresh rig (:mod:`localdev.fleet`: its own Azurite on disk, its own emulator
with ACS's real limits), with a number of instances and a ``TOKEN_FLEET_RATE_PER_30S`` (0: off, ACS's 429s are
passed on at once; on: issues and creates draw from a fleet budget and are answered 429 without asking ACS once the
share is spent). The variants run one after the other in one bench run and are reported side by side.

What the figures are measured against, from the same run: ACS's limits as the emulator enforces them (issue and
create 1,000, revoke and delete 500 per 30 s), the app's ``REVOCATION_RATE_PER_30S``, and the floor ACS's create
limit sets for the storm. Every answer is recorded by the load driver and checked by
:func:`localdev.fleet.verify.verify_fleet`; the invariants' verdicts are rows, never assertions. Which revokes
were the app's paced work (sweep, queue batches, campaign) rather than users' own sign-outs is decided per call
from the emulator's per-identity call log (:mod:`localdev.fleet.attribution`).

Scale: ``BENCH_FLEET_VARIANTS`` (default ``3:0,3:900,1:0``: instances:token fleet rate), ``BENCH_FLEET_*`` for any
:class:`Scenario` field (e.g. ``BENCH_FLEET_STORM_USERS=3000``); ``--quick`` runs a small version of one variant.
``BENCH_FLEET_WORKDIR=<dir>`` keeps each rig's files (instance and HAProxy logs, the emulator's SQLite state,
Azurite's data) in a subdirectory per variant.
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
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import BenchContext
from bench.report import Table, verdict
from localdev.fleet import Fleet, FleetOptions, start_fleet
from localdev.fleet.attribution import (
    USER,
    PacedFigures,
    attribute,
    owners,
    paced_figures,
    read_calls,
    user_windows,
)
from localdev.fleet.load import ClientPolicy, LoadDriver, Recorder
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
SUCCESS_STATUS = {"create": "201", "issue": "200", "revoke": "204", "delete": "204"}


@dataclass(frozen=True)
class Scenario:
    """When and how much; times are seconds from the start of the load."""

    instances: int = 3
    #: TOKEN_FLEET_RATE_PER_30S for every instance (0: off)
    token_fleet_rate: int = 0
    mixed_users: int = 1200
    ops_per_user: int = 6
    mixed_concurrency: int = 48
    think_seconds: float = 1.0
    storm_users: int = 3000
    storm_within: float = 30.0
    storm_at: float = 10.0
    #: an operator's incident campaign (every token issued before then dies), while the storm's clients still retry
    campaign_at: float = 45.0
    kill_at: float = 25.0
    restart_after: float = 10.0
    azurite_restart_at: float = 60.0
    client_deadline: float = 300.0
    revocation_rate_per_30s: int = 400
    schedule: str = "*/30 * * * * *"
    sweep_budget_seconds: int = 20
    batch_size: int = 100
    #: how long the campaign and the users' pending revocations may take after the load (4,000+ revokes at 12.5/s)
    settle_timeout: float = 900.0

    @classmethod
    def for_run(cls, quick: bool, **variant: Any) -> Scenario:
        base = cls()
        if quick:
            base = replace(
                base, mixed_users=150, mixed_concurrency=16, storm_users=300, storm_within=10.0, storm_at=3.0,
                campaign_at=12.0, kill_at=6.0, restart_after=4.0, azurite_restart_at=14.0, settle_timeout=600.0,
            )  # fmt: skip
        overrides: dict[str, Any] = {}
        for spec in fields(cls):
            raw = os.environ.get(f"BENCH_FLEET_{spec.name.upper()}")
            if raw:
                overrides[spec.name] = type(getattr(base, spec.name))(raw)
        return replace(base, **{**overrides, **variant})

    @property
    def name(self) -> str:
        rate = f"TOKEN_FLEET_RATE_PER_30S={self.token_fleet_rate}" if self.token_fleet_rate else "token fleet budget off"
        return f"{self.instances} instance{'s' if self.instances > 1 else ''}, {rate}"

    def fleet_options(self) -> FleetOptions:
        settings = {
            "REVOCATION_RATE_PER_30S": str(self.revocation_rate_per_30s),
            "REVOCATION_TIME_BUDGET_SECONDS": str(self.sweep_budget_seconds),
            "REVOCATION_BATCH_SIZE": str(self.batch_size),
        }
        if self.token_fleet_rate:
            settings["TOKEN_FLEET_RATE_PER_30S"] = str(self.token_fleet_rate)
        return FleetOptions(instances=self.instances, schedule=self.schedule, app_settings=settings)


def variants(quick: bool) -> list[Scenario]:
    """``BENCH_FLEET_VARIANTS`` (``instances:token rate,...``), by default 3 instances off and on, 1 instance off."""
    spec = os.environ.get("BENCH_FLEET_VARIANTS") or ("3:0" if quick else "3:0,3:900,1:0")
    chosen = []
    for item in spec.split(","):
        instances, _, rate = item.strip().partition(":")
        chosen.append(Scenario.for_run(quick, instances=int(instances), token_fleet_rate=int(rate or 0)))
    return chosen


# ------------------------------------------------------------------------------------------- driving one variant


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
    timings["killed_at"] = time.time()
    timings["kill_to_out_s"] = await asyncio.to_thread(fleet.kill, index)
    await asyncio.sleep(scenario.restart_after)
    timings["restart_to_in_s"] = await asyncio.to_thread(fleet.restart, index)
    recorder.mark(f"restarted {holder}")
    await _at(recorder, scenario.azurite_restart_at)
    recorder.mark("azurite down")
    timings["azurite_away_s"] = await asyncio.to_thread(fleet.restart_azurite)
    recorder.mark("azurite up")
    return timings


async def _drive(fleet: Fleet, recorder: Recorder, scenario: Scenario) -> dict[str, Any]:
    policy = ClientPolicy(deadline_seconds=scenario.client_deadline)
    mixed_users = [f"m-{index}" for index in range(scenario.mixed_users)]
    async with LoadDriver(fleet.url, recorder, policy=policy, connections=1000) as driver:

        async def storm() -> None:
            await _at(recorder, scenario.storm_at)
            await driver.storm("storm", scenario.storm_users, scenario.storm_within)

        async def campaign() -> None:
            await _at(recorder, scenario.campaign_at)
            await driver.incident_campaign("fleet bench: every token issued before now")

        mixed = driver.mixed(
            mixed_users, scenario.ops_per_user, concurrency=scenario.mixed_concurrency, think_seconds=scenario.think_seconds
        )
        _, _, _, timings = await asyncio.gather(mixed, storm(), campaign(), _faults(fleet, recorder, scenario))
    return timings


@dataclass
class VariantRun:
    """One variant's recorded answers, verdicts and the figures read from the rig before it stopped."""

    scenario: Scenario
    recorder: Recorder
    report: Report
    elapsed: float  # seconds of load
    timings: dict[str, Any]
    acs: dict[str, dict[str, Any]]  # operation -> requests/successes in any 30 s, 429s, slices
    paced: dict[str, PacedFigures]
    dropped_calls: int
    peaks: dict[str, Any]
    campaign: dict[str, Any] = field(default_factory=dict)
    timer_ok: bool = True
    timer_occurrences: int = 0
    takeover_s: float | None = None


def _acs_figures(sampler: EmulatorSampler) -> dict[str, dict[str, Any]]:
    figures = {}
    for op in ACS_LIMITS:
        throttled = sampler.counter(f"{op}:429", "statuses")
        figures[op] = {
            "max_requests": sampler.max_in_window(op),
            "max_successes": sampler.max_in_window(f"{op}:{SUCCESS_STATUS[op]}", "statuses"),
            "throttled": throttled[-1][1] if throttled else 0,
            "slices": sampler.per_window(op),
        }
    return figures


def _campaign_figures(fleet: Fleet, run: VariantRun, calls: list[Any]) -> dict[str, Any]:
    """The campaign's own progress document, how long it took, and revokes of identities created after its T."""
    documents = run.report.figures.get("campaigns") or []
    if not documents:
        return {}
    document = documents[0]
    figures: dict[str, Any] = {key: document.get(key) for key in ("status", "candidates", "revoked", "alreadyGone", "skipped")}
    figures["failed"] = document.get("failed")
    created, before, finished = (_parse(document.get(key)) for key in ("createdAt", "before", "finishedAt"))
    if created and finished:
        figures["duration_s"] = (finished - created).total_seconds()
    sent = run.recorder.wall(run.recorder.campaigns[0].sent) if run.recorder.campaigns else None
    paced_after = [call.at for call in calls if call.operation == "revoke" and call.source != USER and sent and call.at > sent]
    if sent and paced_after:
        figures["to_last_revoke_s"] = max(paced_after) - sent
    if before:
        t = before.timestamp()
        creations = fleet.identity_creations()
        revoked_by_users = {answer.user for answer in run.recorder.answers if answer.op in ("revoke", "delete")}
        owner = owners(run.recorder.answers)
        after_t = {
            call.identity
            for call in calls
            if call.operation == "revoke"
            and call.source != USER
            and creations.get(call.identity, 0.0) > t
            and owner.get(call.identity) not in revoked_by_users
        }
        figures["revoked_though_created_after_t"] = len(after_t)
        figures["identities_created_after_t"] = sum(1 for at in creations.values() if at > t)
    return figures


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_variant(scenario: Scenario, workdir: Path) -> VariantRun:
    with start_fleet(workdir, scenario.fleet_options()) as fleet:
        with EmulatorSampler(fleet.emulator) as sampler:
            recorder = Recorder()
            started = time.monotonic()
            timings = asyncio.run(_drive(fleet, recorder, scenario))
            elapsed = time.monotonic() - started
            report = verify_fleet(fleet, recorder, settle_timeout=scenario.settle_timeout)
        log = read_calls(fleet.emulator)
        calls = attribute(log.calls, owners(recorder.answers), user_windows(recorder))
        paced = {op: paced_figures(calls, op, recorder.wall_started) for op in ("revoke", "delete")}
        run = VariantRun(
            scenario, recorder, report, elapsed, timings, _acs_figures(sampler), paced, log.dropped, fleet.emulator.peaks()
        )
        run.campaign = _campaign_figures(fleet, run, calls)
        runs = timer_runs(fleet)
        run.timer_ok = not check_timer_once(runs, killed={timings["killed"]})
        run.timer_occurrences = len({r.occurrence for r in runs})
        takeover = [at for at, _ in lock_acquisitions(fleet) if at > timings["killed_at"]]
        run.takeover_s = takeover[0] - timings["killed_at"] if takeover else None
        _write_details(workdir, recorder, report)
    return run


# ------------------------------------------------------------------------------------------- tables


def _statuses(recorder: Recorder, start: float, end: float) -> str:
    counts = Counter(a.status for a in recorder.answers if start <= a.sent <= end)
    return ", ".join(f"{status}: {count}" for status, count in sorted(counts.items())) or "none"


def _latencies(recorder: Recorder, status: int, prefix: str = "") -> list[float]:
    return [a.latency for a in recorder.answers if a.status == status and a.user.startswith(prefix)]


def _side_by_side(runs: list[VariantRun]) -> Table:
    table = Table("fleet: the variants side by side (same scenario, one rig each)", ["measure", *(r.scenario.name for r in runs)])

    def row(measure: str, value: Any) -> None:
        table.add(measure, *(value(r) for r in runs))

    row("requests answered (incl. retries) / in s", lambda r: f"{len(r.recorder.answers)} / {r.elapsed:.0f}")
    row("operations (client-level; each retried until done)", lambda r: len(r.recorder.outcomes))
    row(
        "answers: success / 429 / 503 / other",
        lambda r: "{} / {} / {} / {}".format(*_status_split(r.recorder)),
    )
    for label, key in (("storm: clients that got their token", "got"), ("storm: time to token p50 / p99 / max s", "ttt")):
        row(label, lambda r, key=key: _storm_cell(r, key))
    row("storm: 429 answers / attempts per client (mean)", lambda r: _storm_cell(r, "429"))
    row("storm: time to a 429, p50 / p99 / max s", lambda r: _storm_cell(r, "tt429"))
    row("all clients: time to a 429, p50 / p99 s", lambda r: _p50_p99(_latencies(r.recorder, 429)))
    for op in ("create", "issue"):
        row(
            f"ACS {op}: most requests in any 30 s / 429s from ACS (limit {ACS_LIMITS[op]})",
            lambda r, op=op: f"{r.acs[op]['max_requests']} / {r.acs[op]['throttled']}",
        )
    row(
        "paced revokes (sweep, batches, campaign): most in any sliding 30 s vs REVOCATION_RATE_PER_30S",
        lambda r: (
            f"{r.paced['revoke'].max_paced_in_30s} vs {r.scenario.revocation_rate_per_30s}: "
            + verdict(r.paced["revoke"].max_paced_in_30s <= r.scenario.revocation_rate_per_30s)
        ),
    )
    row("paced deletes: most in any sliding 30 s", lambda r: r.paced["delete"].max_paced_in_30s)
    row(
        "revokes ACS received: paced / users' own / all successes in any 30 s (ACS limit 500)",
        lambda r: f"{r.paced['revoke'].paced_calls} / {r.paced['revoke'].user_calls} / {_peak(r, 'revoke')}",
    )
    row("campaign: candidates / revoked / already gone / skipped / failed", _campaign_counts)
    row(
        "campaign: start to its last revoke / to status done s",
        lambda r: f"{_fmt_s(r.campaign.get('to_last_revoke_s'))} / {_fmt_s(r.campaign.get('duration_s'))}",
    )
    row(
        "campaign: identities created after T that were revoked anyway",
        lambda r: (
            f"{r.campaign.get('revoked_though_created_after_t', '-')} of "
            f"{r.campaign.get('identities_created_after_t', '-')} created after T"
        ),
    )
    row("lost revocations (tokens doomed and still valid / checked)", _lost)
    row("orphan identities (traced to a kill / logged / lost create / unexplained)", _orphans)
    row("SIGKILL of the timer holder: out of the pool / restarted and back in s", _kill_cell)
    row("Azurite restart: storage away s", lambda r: f"{r.timings['azurite_away_s']:.1f}")
    row("revocation timer: occurrences, each on one instance", lambda r: f"{r.timer_occurrences}, {verdict(r.timer_ok)}")
    row(
        "invariants",
        lambda r: "all met" if r.report.ok else "**violated**: " + ", ".join(k for k, v in r.report.problems.items() if v),
    )
    windows = -(-runs[0].scenario.storm_users // ACS_LIMITS["create"]) if runs else 0
    table.notes += [
        "Same-run baselines: ACS's limits (the emulator enforces them: create and issue 1,000, revoke and delete 500 per 30 s, "
        f"sliding); the storm's floor from the create limit alone: the last of {runs[0].scenario.storm_users if runs else 0} "
        f"new users cannot have a token before about {30 * (windows - 1)} s after the first, more while the mixed load "
        "creates and issues too.",
        "Paced = revokes the emulator logged for an identity outside every one of its owner's own revoke/delete requests "
        "(localdev/fleet/attribution.py, from GET /_emulator/identities/{id}); users' own sign-outs are not budgeted.",
        "Time to a 429 = the latency of each 429 answer as the client saw it, through HAProxy; the app's bound: at once, "
        "no wait inside the request for a Retry-After over 1 s.",
    ]
    return table


def _status_split(recorder: Recorder) -> tuple[int, int, int, int]:
    counts = Counter(a.status for a in recorder.answers)
    ok = sum(n for status, n in counts.items() if status in (200, 202, 204, 404))
    return ok, counts[429], counts[503], len(recorder.answers) - ok - counts[429] - counts[503]


def _p50_p99(values: list[float]) -> str:
    if not values:
        return "none"
    return f"{percentile(values, 50):.3f} / {percentile(values, 99):.3f}"


def _fmt_s(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, float) else "-"


def _peak(run: VariantRun, op: str) -> Any:
    return run.peaks.get("operations", {}).get(op, {}).get("peak", 0)


def _storm_cell(run: VariantRun, key: str) -> str:
    figures = storm_figures(run.recorder.outcomes, run.recorder.answers, "storm")
    if key == "got":
        return f"{figures['got_token']} of {figures['clients']} ({figures['first_try']} at the first try)"
    if key == "ttt":
        return f"{figures['time_to_token_p50_s']} / {figures['time_to_token_p99_s']} / {figures['time_to_token_max_s']}"
    if key == "429":
        return f"{figures['answers_429']} / {figures['attempts_mean']}"
    throttled = _latencies(run.recorder, 429, "storm-")
    return f"{_p50_p99(throttled)} / {max(throttled, default=0.0):.3f}"


def _campaign_counts(run: VariantRun) -> str:
    c = run.campaign
    if not c:
        return "no campaign"
    counts = " / ".join(str(c.get(key)) for key in ("candidates", "revoked", "alreadyGone", "skipped", "failed"))
    return f"{counts} ({c.get('status')})"


def _lost(run: VariantRun) -> str:
    revocations = run.report.figures.get("revocations", {})
    return f"{revocations.get('still_valid', '-')} / {revocations.get('tokens_checked', '-')}"


def _orphans(run: VariantRun) -> str:
    o = run.report.figures.get("orphans", {})
    return (
        f"{o.get('orphans', '-')} ({o.get('created_shortly_before_a_kill', '-')} / {o.get('logged_by_id', '-')} / "
        f"{o.get('after_a_lost_create_answer', '-')} / {o.get('unexplained', '-')})"
    )


def _kill_cell(run: VariantRun) -> str:
    takeover = f"; timer taken over after {run.takeover_s:.1f} s" if run.takeover_s is not None else ""
    return f"{run.timings['kill_to_out_s']:.2f} / {run.timings['restart_to_in_s']:.2f}{takeover}"


def _per_30s_table(runs: list[VariantRun]) -> Table:
    table = Table(
        "fleet: what ACS (the emulator) received per consecutive 30 s from the start of the load",
        ["variant", "operation", "limit or setting", "per 30 s"],
    )
    for run in runs:
        for op in ("create", "issue"):
            table.add(run.scenario.name, f"{op} (all)", ACS_LIMITS[op], " ".join(str(n) for n in run.acs[op]["slices"]))
        table.add(
            run.scenario.name,
            "revoke (paced)",
            f"REVOCATION_RATE_PER_30S={run.scenario.revocation_rate_per_30s}",
            " ".join(str(n) for n in run.paced["revoke"].slices),
        )
        table.add(run.scenario.name, "revoke (all)", ACS_LIMITS["revoke"], " ".join(str(n) for n in run.acs["revoke"]["slices"]))
    table.notes.append(
        "Consecutive slices understate a sliding window's peak; the side-by-side table has the sliding maxima. "
        "Counts are requests, whatever ACS answered."
    )
    if any(run.dropped_calls for run in runs):
        table.notes.append(f"calls the emulator counted but no longer kept per identity: {[r.dropped_calls for r in runs]}")
    return table


def _faults_table(runs: list[VariantRun]) -> Table:
    table = Table("fleet: answers around the faults", ["variant", "event", "answers sent then (status: count)"])
    for run in runs:
        marks = {what: at for at, what in run.recorder.marks}
        kill = marks[f"kill {run.timings['killed']}"]
        table.add(run.scenario.name, f"SIGKILL {run.timings['killed']}, 3 s after", _statuses(run.recorder, kill, kill + 3))
        table.add(
            "",
            "Azurite away and 3 s after",
            _statuses(run.recorder, marks["azurite down"], marks["azurite up"] + 3),
        )
    return table


def _latency_table(runs: list[VariantRun]) -> Table:
    table = Table(
        "fleet: answer latency through the balancer (ms)", ["variant", "operation", "status", "answers", "p50", "p99", "max"]
    )
    for run in runs:
        by_key: dict[tuple[str, int], list[float]] = {}
        for answer in run.recorder.answers:
            if answer.status in (200, 202, 204, 429, 503):
                by_key.setdefault((answer.op, answer.status), []).append(answer.latency * 1000)
        for (op, status), values in sorted(by_key.items()):
            table.add(
                run.scenario.name, op, status, len(values), f"{statistics.median(values):.0f}",
                f"{percentile(values, 99):.0f}", f"{max(values):.0f}",
            )  # fmt: skip
    return table


def _violations_table(runs: list[VariantRun]) -> Table | None:
    table = Table("fleet: violations found", ["variant", "invariant", "what"])
    for run in runs:
        for name, found in run.report.problems.items():
            for problem in found[:5]:
                table.add(run.scenario.name, name, problem[:300])
    return table if table.rows else None


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
    runs = []
    with _workdir() as workdir:
        for index, scenario in enumerate(variants(ctx.quick)):
            print(f"   fleet variant {index + 1}: {scenario.name} ...", flush=True)
            started = time.monotonic()
            runs.append(run_variant(scenario, workdir / f"variant-{index + 1}"))
            print(f"   ... {time.monotonic() - started:.0f} s", flush=True)
    tables = [_side_by_side(runs), _per_30s_table(runs), _faults_table(runs), _latency_table(runs)]
    violations = _violations_table(runs)
    if violations is not None:
        tables.append(violations)
    first = runs[0].scenario
    tables[0].notes.append(
        f"Scenario per variant: {first.mixed_users} mixed users x {first.ops_per_user} operations "
        f"(concurrency {first.mixed_concurrency}), a storm of {first.storm_users} new users within {first.storm_within:.0f} s "
        f"from {first.storm_at:.0f} s, an incident campaign (POST /api/ops/campaigns) at {first.campaign_at:.0f} s, the "
        f"timer's holder SIGKILLed at {first.kill_at:.0f} s and restarted {first.restart_after:.0f} s later, Azurite "
        f"restarted at {first.azurite_restart_at:.0f} s; REVOCATION_RATE_PER_30S={first.revocation_rate_per_30s}, "
        f"sweep every 30 s with a {first.sweep_budget_seconds} s budget, batches of {first.batch_size}."
    )
    return tables
