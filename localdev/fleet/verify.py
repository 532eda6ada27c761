"""The invariants a fleet run must meet, checked against what clients saw and what storage and ACS hold afterwards.

1. Every answer is a success, or a 429/503 with ``Retry-After`` (delay-seconds) and a JSON error body. A refresh
   before any identity (or after a delete) is 404 ``identity_not_found`` by contract.
2. Every client that honours ``Retry-After`` completes its operation (gets its token): counts and time to token.
3. No orphan identities: every identity alive in the emulator is in the identity map. An orphan is traced to an
   instance killed just after creating it (the one case the design leaves open) or to a logged failed cleanup.
4. No lost revocations: every token issued before an accepted (204 or 202) revoke or delete is dead per the
   emulator's ``validate``, once the sweep has finished what was recorded.
5. Each user keeps one identity until it deletes it: a refresh never answers 404 to a user who holds an identity,
   and token answers name the same identity until a delete (what every instance must agree on).
6. (:func:`check_timer_once`) each timer occurrence completes on one instance.

The approach of 3 and 4 is the soak test's (tests/soak/test_soak.py), extended to several instances.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from localdev.fleet.load import RETRYABLE, SUCCESS, Answer, Outcome, Recorder, UserHistory, retry_after_seconds
from localdev.fleet.rig import Fleet

#: how long before a kill an identity may have been created and still be "killed between create and map"
KILL_WINDOW_SECONDS = 60.0
#: what the token service logs when ACS and storage both failed while it cleaned up an orphan (shared/domain/token_service.py)
_ORPHAN_LOGGED = re.compile(r"orphan ACS identity (\S+) could not be deleted nor recorded")
#: ... and when a create's answer was lost (ACS may have created an identity whose id nobody knows)
LOST_CREATE = "creating an ACS identity failed"
#: how long after an identity's creation a lost-create log line may explain it (the ACS client's read timeout is 20 s)
LOST_CREATE_WINDOW_SECONDS = 30.0


#: the invariants :func:`verify_fleet` checks, the keys of :attr:`Report.problems`
INVARIANTS = ("answers", "clients", "settled", "orphans", "revocations", "identities")


@dataclass
class Report:
    """Violations per invariant (all lists empty when every invariant holds) and the run's figures."""

    problems: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in INVARIANTS})
    figures: dict[str, Any] = field(default_factory=dict)
    #: per invariant, the users whose histories show a violation (see :func:`describe_user`)
    users: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def violations(self, *, excluding: Iterable[str] = ()) -> list[str]:
        """Every violation as "<invariant>: <what>", except those of the ``excluding`` invariants."""
        skipped = set(excluding)
        return [f"{name}: {problem}" for name, found in self.problems.items() if name not in skipped for problem in found]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# 1. answers ---------------------------------------------------------------------------------


def answer_problem(answer: Answer) -> str | None:
    """Why this answer breaks invariant 1, or None."""
    if answer.status in SUCCESS[answer.op]:
        if answer.status == 404 and answer.shape != "error:identity_not_found":
            return f"{answer.op} 404 {answer.shape}"
        if answer.status == 200 and answer.shape != "token":
            return f"{answer.op} 200 {answer.shape}"
        return None
    if answer.status in RETRYABLE:
        if retry_after_seconds(answer.retry_after) is None:
            return f"{answer.op} {answer.status} without a delay-seconds Retry-After ({answer.retry_after!r})"
        if not answer.shape.startswith("error:"):
            return f"{answer.op} {answer.status} with a {answer.shape} body"
        return None
    return f"{answer.op} {answer.status} {answer.shape}"


def check_answers(answers: Iterable[Answer]) -> tuple[list[str], dict[str, int]]:
    """Violations of invariant 1 (counted by kind) and the count of every (op, status, shape)."""
    bad: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for answer in answers:
        seen[f"{answer.op} {answer.status} {answer.shape}"] += 1
        problem = answer_problem(answer)
        if problem:
            bad[problem] += 1
    return [f"{count} x {problem}" for problem, count in bad.most_common()], dict(seen.most_common())


# 2. clients ----------------------------------------------------------------------------------


def check_outcomes(outcomes: Iterable[Outcome]) -> tuple[list[str], dict[str, Any]]:
    """Every operation ended well (a client honouring Retry-After always gets there); figures per operation."""
    by_op: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_op.setdefault(outcome.op, []).append(outcome)
    problems, figures = [], {}
    for op, items in sorted(by_op.items()):
        failed = [o for o in items if not o.ok]
        if failed:
            statuses = Counter(o.status for o in failed)
            problems.append(f"{len(failed)} of {len(items)} {op} operations never succeeded (last statuses {dict(statuses)})")
        durations = [o.duration for o in items if o.ok]
        figures[op] = {
            "operations": len(items),
            "succeeded": len(items) - len(failed),
            "retried": sum(1 for o in items if o.attempts > 1),
            "p50_s": round(percentile(durations, 50), 3),
            "p99_s": round(percentile(durations, 99), 3),
            "max_s": round(max(durations, default=0.0), 3),
        }
    return problems, figures


def check_identities(answers: Iterable[Answer]) -> tuple[list[str], dict[str, int], list[str]]:
    """Invariant 5, per user in the order the client saw its answers (each user's operations are sequential).

    (violations counted by kind, the counts, the users concerned)"""
    by_user: dict[str, list[Answer]] = {}
    for answer in answers:
        by_user.setdefault(answer.user, []).append(answer)
    bad: Counter[str] = Counter()
    examples: dict[str, str] = {}
    concerned: list[str] = []
    for user, history in by_user.items():
        current: str | None = None
        for answer in sorted(history, key=lambda a: a.sent):
            problem = None
            if answer.status == 200 and answer.identity:
                if current is not None and answer.identity != current:
                    problem = f"{answer.op} answered another identity without a delete"
                current = answer.identity
            elif answer.op == "refresh" and answer.status == 404 and current is not None:
                problem = "refresh 404 although the user holds an identity"
            elif answer.op == "delete" and answer.status in SUCCESS["delete"]:
                current = None
            if problem:
                bad[problem] += 1
                examples.setdefault(problem, f"{user} via {answer.instance}")
                concerned.append(user)
    problems = [f"{count} x {problem} (e.g. {examples[problem]})" for problem, count in bad.most_common()]
    return problems, dict(bad), sorted(set(concerned))


def describe_user(recorder: Recorder, user: str) -> str:
    """One user's answers in order (time, operation, status, body, instance, identity): to see why an invariant broke."""
    history = recorder.users.get(user, UserHistory())
    lines = [f"{user}: {len(history.tokens)} tokens, killed_before={history.killed_before}"]
    for answer in sorted((a for a in recorder.answers if a.user == user), key=lambda a: a.sent):
        identity = f" {answer.identity}" if answer.identity else ""
        lines.append(f"  {answer.sent:8.2f}s {answer.op:8} {answer.status} {answer.shape} via {answer.instance}{identity}")
    return "\n".join(lines)


def storm_figures(outcomes: Sequence[Outcome], answers: Iterable[Answer], prefix: str) -> dict[str, Any]:
    """Time to token and time to a 429 for the storm's users (``<prefix>-<n>``)."""
    mine = [o for o in outcomes if o.user.startswith(prefix + "-")]
    throttled = [a.latency for a in answers if a.user.startswith(prefix + "-") and a.status == 429]
    got = [o.duration for o in mine if o.ok]
    return {
        "clients": len(mine),
        "got_token": len(got),
        "first_try": sum(1 for o in mine if o.ok and o.attempts == 1),
        "time_to_token_p50_s": round(percentile(got, 50), 2),
        "time_to_token_p99_s": round(percentile(got, 99), 2),
        "time_to_token_max_s": round(max(got, default=0.0), 2),
        "answers_429": len(throttled),
        "time_to_429_p50_s": round(percentile(throttled, 50), 3),
        "time_to_429_p99_s": round(percentile(throttled, 99), 3),
        "attempts_mean": round(statistics.fmean(o.attempts for o in mine), 2) if mine else 0.0,
    }


# 3 and 4: what storage and ACS hold afterwards -------------------------------------------------


def settle_revocations(fleet: Fleet, timeout: float = 150.0, *, run_sweep: bool = False) -> dict[str, Any]:
    """Wait until no recorded revocation request is pending and no incident campaign is active; the last status seen.

    By default the fleet's own timer and queue trigger do the work, so what ACS sees meanwhile is still the app's
    own pacing. ``run_sweep`` also starts the sweep by hand on a live instance at every poll (a second sweep beside
    the timer's: faster, but then the fleet exceeds its configured rate by design).
    """
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while True:
        instance = next(i for i in fleet.instances if i.alive)
        if run_sweep:
            requests.post(f"{instance.url}/admin/functions/revocation_sweep", json={}, timeout=300)
        status = requests.get(f"{instance.url}/api/ops/revocations/status", timeout=30).json()
        settled = status.get("pendingRequests") == 0 and not status.get("campaigns")
        if settled or time.monotonic() > deadline:
            return status
        time.sleep(2)


def campaign_progress(fleet: Fleet, campaign_id: str) -> dict[str, Any]:
    """``GET /api/ops/campaigns/{id}`` on a live instance: status, candidates, revoked, alreadyGone, skipped, failed..."""
    instance = next(i for i in fleet.instances if i.alive)
    document: dict[str, Any] = requests.get(f"{instance.url}/api/ops/campaigns/{campaign_id}", timeout=30).json()
    return document


def find_orphans(fleet: Fleet) -> list[tuple[str, float]]:
    """(id, created) of identities alive in the emulator that the identity map does not hold."""
    mapped = fleet.mapped_identities()
    return sorted((acs_id, created) for acs_id, created in fleet.live_identities().items() if acs_id not in mapped)


def classify_orphans(
    orphans: Sequence[tuple[str, float]],
    kills: Sequence[float],
    logged_ids: Iterable[str],
    lost_creates: Sequence[float],
) -> dict[str, str]:
    """Each orphan's cause (id -> cause), the first that fits, in this order:

    - ``logged``: an instance logged its id as an orphan it could neither delete nor record (README, "Orphan
      identities": the operator deletes it by hand);
    - ``kill``: created at most KILL_WINDOW_SECONDS before an instance was SIGKILLed, the one gap the design leaves
      open (created in ACS, the process died before the mapping was written; nothing is logged);
    - ``lost_create``: an instance logged a failed create (``creating an ACS identity failed``: the answer was lost,
      the id is unknown) within LOST_CREATE_WINDOW_SECONDS after it was created;
    - ``unexplained``: none of these.
    """
    logged = set(logged_ids)
    causes = {}
    for acs_id, created in orphans:
        if acs_id in logged:
            causes[acs_id] = "logged"
        elif any(0 <= kill - created <= KILL_WINDOW_SECONDS for kill in kills):
            causes[acs_id] = "kill"
        elif any(0 <= failed - created <= LOST_CREATE_WINDOW_SECONDS for failed in lost_creates):
            causes[acs_id] = "lost_create"
        else:
            causes[acs_id] = "unexplained"
    return causes


def trace_orphans(fleet: Fleet, orphans: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """How many orphans each known cause explains (see :func:`classify_orphans`), from the rig's events and logs."""
    kills = [at for at, what in fleet.events if what.startswith("kill ")]
    logged_ids: list[str] = []
    lost_creates: list[float] = []
    for index in range(len(fleet.instances)):
        for line in fleet.log_text(index).splitlines():
            if match := _ORPHAN_LOGGED.search(line):
                logged_ids.append(match.group(1))
            elif LOST_CREATE in line:
                lost_creates.append(_log_time(line))
    causes = Counter(classify_orphans(orphans, kills, logged_ids, lost_creates).values())
    nearest = [min((kill - created for kill in kills if kill >= created), default=None) for _, created in orphans]
    return {
        "orphans": len(orphans),
        "created_shortly_before_a_kill": causes["kill"],
        "logged_by_id": causes["logged"],
        "after_a_lost_create_answer": causes["lost_create"],
        "unexplained": causes["unexplained"],
        "lost_create_answers_logged": len(lost_creates),
        "seconds_from_creation_to_kill": sorted(round(gap, 2) for gap in nearest if gap is not None),
    }


def lost_revocations(fleet: Fleet, users: dict[str, UserHistory], workers: int = 8) -> tuple[int, list[str]]:
    """(tokens checked, the user of each one still valid) among those issued before an accepted revoke or delete."""
    doomed = [(user, token) for user, history in users.items() for token in history.tokens[: history.killed_before]]

    def still_valid(item: tuple[str, str]) -> bool:
        return fleet.emulator.validate(item[1]).get("valid") is not False

    with ThreadPoolExecutor(workers) as pool:
        alive = [user for (user, _), valid in zip(doomed, pool.map(still_valid, doomed), strict=True) if valid]
    return len(doomed), alive


def verify_fleet(fleet: Fleet, recorder: Recorder, *, settle_timeout: float = 150.0) -> Report:
    """Invariants 1 to 5 for a finished run; ``report.problems[<invariant>]`` names every violation."""
    report = Report()
    report.problems["answers"], report.figures["answers"] = check_answers(recorder.answers)
    report.problems["clients"], report.figures["operations"] = check_outcomes(recorder.outcomes)
    identity_check = check_identities(recorder.answers)
    report.problems["identities"], report.figures["identity_anomalies"], report.users["identities"] = identity_check

    status = settle_revocations(fleet, settle_timeout)
    report.figures["pending_after_settle"] = status.get("pendingRequests")
    if status.get("pendingRequests") != 0:
        report.problems["settled"].append(
            f"revocation requests still pending after {settle_timeout:.0f} s: {status.get('pendingRequests')}"
        )
    report.figures["campaigns"] = [campaign_progress(fleet, started.campaign_id) for started in recorder.campaigns]
    for campaign in report.figures["campaigns"]:
        if campaign.get("status") != "done":
            report.problems["settled"].append(f"campaign {campaign.get('id')} is {campaign.get('status')} after the settle")

    orphans = find_orphans(fleet)
    report.figures["orphans"] = trace_orphans(fleet, orphans)
    if report.figures["orphans"]["unexplained"]:
        unexplained = report.figures["orphans"]["unexplained"]
        report.problems["orphans"].append(f"{unexplained} orphan identities not explained by a kill or a log line: {orphans[:5]}")

    checked, alive = lost_revocations(fleet, recorder.users)
    report.figures["revocations"] = {"tokens_checked": checked, "still_valid": len(alive)}
    report.users["revocations"] = sorted(set(alive))
    if alive:
        report.problems["revocations"].append(
            f"{len(alive)} tokens issued before an accepted revoke/delete are still valid: {alive[:5]}"
        )
    return report


# 6. timers: each occurrence on one instance ------------------------------------------------------

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_START = re.compile(r"timer (\S+): occurrence (\S+) past_due=(True|False) instance=(\S+)")
_DONE = re.compile(r"timer (\S+): occurrence (\S+) done in")
_ACQUIRED = re.compile(r"timer (\S+): listener lock acquired by instance (\S+)")
_UNRECORDED = re.compile(r"could not record the schedule status in timers/\S+?/Host\.Functions\.(\S+)/status")


@dataclass(frozen=True)
class TimerRun:
    """One occurrence started on one instance, from its log (devhost logs each start and end)."""

    instance: str
    occurrence: str
    past_due: bool
    done: bool
    at: float  # time.time() of the start line
    latest: bool  # the instance's most recent start (may still be running)
    unrecorded: bool = False  # done, but writing the schedule status afterwards failed (storage away)


def _log_time(line: str) -> float:
    match = _LOG_TIME.match(line)
    if not match:
        return 0.0
    return time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000  # devhost logs local time


def timer_runs(fleet: Fleet, function: str = "revocation_sweep") -> list[TimerRun]:
    runs: list[TimerRun] = []
    for instance in fleet.instances:
        started: list[tuple[str, bool, float]] = []
        finished: set[tuple[int, str]] = set()
        unrecorded: set[int] = set()
        last_done = -1
        for line in instance.log_text().splitlines():
            if (start := _START.search(line)) and start.group(1) == function:
                started.append((start.group(2), start.group(3) == "True", _log_time(line)))
            elif (end := _DONE.search(line)) and end.group(1) == function:
                index = max((i for i, (occurrence, _, _) in enumerate(started) if occurrence == end.group(2)), default=-1)
                finished.add((index, end.group(2)))
                last_done = index
            elif (failed := _UNRECORDED.search(line)) and failed.group(1) == function and last_done >= 0:
                unrecorded.add(last_done)  # the write that follows the occurrence that just ended
        for index, (occurrence, past_due, at) in enumerate(started):
            done = (index, occurrence) in finished
            runs.append(TimerRun(instance.name, occurrence, past_due, done, at, index == len(started) - 1, index in unrecorded))
    return sorted(runs, key=lambda run: run.at)


def lock_acquisitions(fleet: Fleet, function: str = "revocation_sweep") -> list[tuple[float, str]]:
    """(time, instance) of every listener-lock acquisition in the instances' logs, in order."""
    found = [
        (_log_time(line), match.group(2))
        for instance in fleet.instances
        for line in instance.log_text().splitlines()
        if (match := _ACQUIRED.search(line)) and match.group(1) == function
    ]
    return sorted(found)


def check_timer_once(runs: Sequence[TimerRun], killed: Iterable[str]) -> list[str]:
    """Each occurrence completes on at most one instance. A start that never ended must be its instance's last
    before a kill (or its latest, still running), and only then may the occurrence run again, past due, elsewhere.

    One exception, which the Functions host has too: the schedule status is written *after* the invocation
    (``TimerListener`` invokes, then ``ScheduleMonitor.UpdateStatusAsync``; devhost/singleton.py), so a holder
    killed between "done" and that write, or whose write failed because storage was away (the write is best
    effort, as ``UpdateStatusAsync``'s), leaves the occurrence recorded as next. The instance that takes the lock
    then runs it again, past due: timer triggers are at least once. Allowed only when every earlier completion is
    on a killed instance or logged its failed status write, and every later start is past due.
    """
    killed = set(killed)
    problems = []
    by_occurrence: dict[str, list[TimerRun]] = {}
    for run in runs:
        by_occurrence.setdefault(run.occurrence, []).append(run)
    for occurrence, starts in sorted(by_occurrence.items()):
        completed = [run for run in starts if run.done]
        rerun_after_kill = all(run.instance in killed or run.unrecorded for run in completed[:-1]) and all(
            run.past_due for run in completed[1:]
        )
        if len(completed) > 1 and not rerun_after_kill:
            problems.append(f"occurrence {occurrence} completed on {[run.instance for run in completed]}")
        for run in starts:
            if not run.done and not run.latest and run.instance not in killed:
                problems.append(f"occurrence {occurrence} started on {run.instance} and never ended, without a kill")
        if len(starts) > 1 and not all(run.past_due for run in starts[1:]):
            problems.append(f"occurrence {occurrence} started {len(starts)} times: {[(r.instance, r.past_due) for r in starts]}")
        if len(starts) > 1 and not all(run.instance in killed for run in starts[:-1] if not run.done):
            problems.append(f"occurrence {occurrence} re-run although its first instance was not killed")
    return problems
