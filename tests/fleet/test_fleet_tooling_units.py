"""The fleet tooling's own logic, in memory: the verifier must catch each kind of violation it claims to catch.

No sockets: answers, outcomes, timer runs and emulator samples are built by hand.
"""

from __future__ import annotations

import random
from pathlib import Path

from localdev.fleet.attribution import (
    PACED,
    USER,
    AcsCall,
    attribute,
    max_in_window,
    owners,
    paced_figures,
    per_slice,
    user_windows,
)
from localdev.fleet.haproxy import INSTANCE_HEADER, error_response, render_config
from localdev.fleet.load import Answer, Outcome, Recorder, body_shape, plan_mixed, retry_after_seconds
from localdev.fleet.observe import EmulatorSampler, Sample
from localdev.fleet.verify import (
    Report,
    TimerRun,
    answer_problem,
    check_answers,
    check_identities,
    check_outcomes,
    check_timer_once,
    classify_orphans,
    percentile,
    timer_runs,
)


def answer(
    op: str,
    status: int,
    shape: str,
    *,
    retry_after: str | None = None,
    sent: float = 0.0,
    user: str = "u",
    identity: str | None = None,
) -> Answer:
    return Answer(op, user, status, sent, 0.01, retry_after, "application/json", shape, "i0", 1, identity)


def test_bodies_are_classified_by_what_the_api_promises() -> None:
    json_type = "application/json"
    assert (
        body_shape(200, json_type, b'{"communicationUserId": "8:acs:x", "token": "t", "expiresOn": "e", "scopes": []}')[0]
        == "token"
    )
    assert body_shape(202, json_type, b'{"status": "pending"}')[0] == "pending"
    assert body_shape(202, json_type, b'{"accepted": 2, "requests": []}')[0] == "accepted"
    assert body_shape(429, json_type, b'{"error": {"code": "throttled", "message": "m"}}')[0] == "error:throttled"
    assert body_shape(503, "text/html", b"<html>busy</html>")[0] == "not_json"
    assert body_shape(503, json_type, b'{"error": "busy"}')[0] == "unexpected"
    assert body_shape(204, "", b"")[0] == "empty"
    assert (retry_after_seconds("3"), retry_after_seconds(" 10 "), retry_after_seconds(None)) == (3.0, 10.0, None)
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT") is None  # this API sends seconds only


def test_the_answer_invariant_flags_missing_retry_after_non_json_and_unexpected_statuses() -> None:
    assert answer_problem(answer("issue", 200, "token")) is None
    assert answer_problem(answer("issue", 429, "error:throttled", retry_after="2")) is None
    assert answer_problem(answer("refresh", 404, "error:identity_not_found")) is None
    assert answer_problem(answer("issue", 429, "error:throttled")) is not None  # no Retry-After
    assert answer_problem(answer("issue", 503, "not_json", retry_after="1")) is not None
    assert answer_problem(answer("issue", 502, "not_json")) is not None
    assert answer_problem(answer("revoke", 500, "error:internal_error")) is not None
    assert answer_problem(answer("issue", 0, "connection_error:ServerDisconnectedError")) is not None
    assert answer_problem(answer("issue", 404, "error:identity_not_found")) is not None  # only refresh may 404
    problems, seen = check_answers(
        [answer("issue", 200, "token"), answer("issue", 502, "not_json"), answer("issue", 502, "not_json")]
    )
    assert problems == ["2 x issue 502 not_json"] and seen == {"issue 502 not_json": 2, "issue 200 token": 1}


def test_a_client_that_never_got_there_is_a_violation() -> None:
    done = Outcome("issue", "a", started=0.0, finished=2.0, attempts=3, status=200, ok=True)
    gave_up = Outcome("issue", "b", started=0.0, finished=180.0, attempts=40, status=429, ok=False)
    problems, figures = check_outcomes([done, gave_up])
    assert problems == ["1 of 2 issue operations never succeeded (last statuses {429: 1})"]
    assert figures["issue"]["succeeded"] == 1 and figures["issue"]["retried"] == 2


def test_a_refresh_404_or_a_new_identity_without_a_delete_is_an_identity_anomaly() -> None:
    consistent = [
        answer("issue", 200, "token", identity="X", sent=1),
        answer("delete", 204, "empty", sent=2),
        answer("refresh", 404, "error:identity_not_found", sent=3),  # after a delete: by contract
        answer("issue", 200, "token", identity="Y", sent=4),
        answer("refresh", 200, "token", identity="Y", sent=5),
    ]
    assert check_identities(consistent) == ([], {}, [])
    stale = [
        answer("issue", 200, "token", identity="X", sent=1),
        answer("refresh", 404, "error:identity_not_found", sent=2),
        answer("issue", 200, "token", identity="Z", sent=3),
    ]
    problems, counts, users = check_identities(stale)
    assert counts == {"refresh 404 although the user holds an identity": 1, "issue answered another identity without a delete": 1}
    assert len(problems) == 2 and users == ["u"]


def run(
    instance: str, occurrence: str, *, past_due: bool = False, done: bool = True, at: float = 0.0, latest: bool = False
) -> TimerRun:
    return TimerRun(instance, occurrence, past_due, done, at, latest)


def test_timer_occurrences_may_repeat_only_as_a_past_due_rerun_after_a_killed_instance() -> None:
    clean = [
        run("i0", "t1", at=1),
        run("i0", "t2", at=2, done=False),
        run("i1", "t2", past_due=True, at=20),
        run("i1", "t3", at=21),
    ]
    assert check_timer_once(clean, killed={"i0"}) == []
    assert check_timer_once([run("i0", "t1", at=1), run("i1", "t1", at=1.1)], killed=set())  # completed twice
    assert check_timer_once([run("i0", "t1", at=1, done=False), run("i1", "t1", past_due=True, at=20)], killed=set())  # no kill
    assert check_timer_once([run("i0", "t1", at=1, done=False), run("i1", "t1", at=20)], killed={"i0"})  # rerun not past due
    assert check_timer_once([run("i0", "t9", at=1, done=False, latest=True)], killed=set()) == []  # still running
    # killed after "done" but before the status write: the next holder runs it again, past due (at least once)
    assert check_timer_once([run("i0", "t1", at=1), run("i1", "t1", past_due=True, at=20)], killed={"i0"}) == []
    assert check_timer_once([run("i0", "t1", at=1), run("i1", "t1", at=20)], killed={"i0"})  # not past due
    assert check_timer_once([run("i0", "t1", at=1), run("i1", "t1", past_due=True, at=20)], killed={"i1"})  # wrong one
    # its status write failed (storage away): the same at-least-once rerun, without a kill
    unrecorded = TimerRun("i0", "t1", False, True, 1.0, False, unrecorded=True)
    assert check_timer_once([unrecorded, run("i1", "t1", past_due=True, at=20)], killed=set()) == []


def test_emulator_counters_become_per_window_figures() -> None:
    sampler = EmulatorSampler(emulator=None)
    for second, revokes in enumerate([0, 100, 300, 500, 500, 700]):
        sampler.samples.append(Sample(at=float(second * 15), operations={"revoke": revokes}, statuses={}))
    # samples at 0, 15, 30, 45, 60, 75 s: the busiest 30 s span is 15..45 (400) or 45..75 (200) or 0..30 (300)
    assert sampler.max_in_window("revoke") == 400
    assert sampler.per_window("revoke") == [300, 200, 200]  # (0, 30], (30, 60], (60, 90]
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and percentile([], 99) == 0.0


def test_the_balancer_retries_health_checks_and_answers_its_own_errors_as_json_503(tmp_path: Path) -> None:
    config = render_config(8080, [("i0", 9001), ("i1", 9002)], tmp_path / "s.sock", tmp_path / "503.http")
    for line in (
        "option httpchk",
        "http-check send meth GET uri /api/health",
        "retry-on conn-failure empty-response",
        "option redispatch 1",
        f"http-response set-header {INSTANCE_HEADER} %[srv_name]",
        "server i1 127.0.0.1:9002",
        f"errorfile 502 {tmp_path / '503.http'}",
    ):
        assert line in config
    head, _, body = error_response().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head and b"Content-Type: application/json" in head
    assert body.startswith(b'{"error": {"code": "unavailable"') and f"Content-Length: {len(body)}".encode() in head


def test_a_mixed_plan_signs_in_first_and_is_reproducible() -> None:
    plans = plan_mixed(["a", "b"], 5, random.Random(1))
    assert all(ops[0] == "issue" and len(ops) == 5 for ops in plans.values())
    assert plans == plan_mixed(["a", "b"], 5, random.Random(1))
    assert Report().ok and not Report(problems={"answers": ["x"]}).ok


class LoggedInstance:
    def __init__(self, name: str, log: str) -> None:
        self.name, self._log = name, log

    def log_text(self) -> str:
        return self._log


class LoggedFleet:
    def __init__(self, *instances: LoggedInstance) -> None:
        self.instances = list(instances)


def test_timer_runs_read_from_the_logs_mark_a_completion_whose_status_write_failed() -> None:
    sweep = "timer revocation_sweep: occurrence"
    status = "devhost.singleton WARNING could not record the schedule status in"
    i0 = LoggedInstance(
        "i0",
        f"2026-11-27 21:42:48,000 {sweep} 2026-11-27T21:42:48+00:00 past_due=False instance=i0\n"
        f"2026-11-27 21:42:48,100 {sweep} 2026-11-27T21:42:48+00:00 done in 100 ms instance=i0\n"
        f"2026-11-27 21:42:50,000 {sweep} 2026-11-27T21:42:50+00:00 past_due=False instance=i0\n"
        f"2026-11-27 21:42:50,900 {sweep} 2026-11-27T21:42:50+00:00 done in 900 ms instance=i0\n"
        f"2026-11-27 21:42:55,900 {status} timers/fleet/Host.Functions.revocation_sweep/status: ServiceRequestError\n",
    )
    i1 = LoggedInstance(
        "i1",
        f"2026-11-27 21:43:10,000 {sweep} 2026-11-27T21:42:50+00:00 past_due=True instance=i1\n"
        f"2026-11-27 21:43:10,500 {sweep} 2026-11-27T21:42:50+00:00 done in 500 ms instance=i1\n",
    )
    runs = timer_runs(LoggedFleet(i0, i1))  # duck-typed: timer_runs reads names and logs
    assert [(r.instance, r.occurrence[-14:-6], r.done, r.unrecorded, r.past_due) for r in runs] == [
        ("i0", "21:42:48", True, False, False),
        ("i0", "21:42:50", True, True, False),
        ("i1", "21:42:50", True, False, True),
    ]
    assert check_timer_once(runs, killed=set()) == []
    recorded = [TimerRun(r.instance, r.occurrence, r.past_due, r.done, r.at, r.latest) for r in runs]
    assert check_timer_once(recorded, killed=set()) != []  # without the failed write it is a double run


def test_a_started_campaign_is_its_own_answer_shape() -> None:
    document = b'{"id": "c0123456789ab", "status": "active", "candidates": null, "statusUrl": "/api/ops/campaigns/c0123456789ab"}'
    assert body_shape(202, "application/json", document)[0] == "campaign"
    assert answer_problem(answer("campaign", 202, "campaign")) is None


def test_a_revoke_inside_its_owners_own_request_is_the_users_and_every_other_is_paced() -> None:
    recorder = Recorder()
    recorder.wall_started = 1000.0
    recorder.answers = [
        answer("issue", 200, "token", user="alice", identity="A", sent=1.0),
        Answer("revoke", "alice", 204, 10.0, 0.5, None, "", "empty", "i0", 1),  # alice's sign-out: 1010.0 .. 1010.5
        answer("issue", 200, "token", user="bob", identity="B", sent=2.0),
    ]
    calls = [
        AcsCall("A", "revoke", 1010.2, 204),  # inside alice's request
        AcsCall("A", "revoke", 1045.0, 204),  # later: the sweep's (e.g. a campaign)
        AcsCall("B", "revoke", 1010.2, 204),  # bob never signed out: paced whatever the time
    ]
    marked = attribute(calls, owners(recorder.answers), user_windows(recorder))
    assert [call.source for call in marked] == [USER, PACED, PACED]
    figures = paced_figures(marked, "revoke", start=1000.0)
    assert (figures.paced_calls, figures.user_calls, figures.max_paced_in_30s) == (2, 1, 1)
    assert figures.slices == [1, 1]  # [1000, 1030): bob's; [1030, 1060): alice's second
    assert figures.paced_succeeded == 2


def test_the_busiest_sliding_window_is_half_open_and_found_wherever_it_starts() -> None:
    assert max_in_window([]) == (0, 0.0)
    assert max_in_window([0.0, 30.0]) == (1, 0.0)  # [0, 30) does not hold 30
    assert max_in_window([0.0, 10.0, 29.9, 30.0, 31.0]) == (4, 10.0)  # [10, 40) holds 10, 29.9, 30, 31
    assert max_in_window([0.0, 20.0, 35.0, 40.0, 45.0]) == (4, 20.0)  # [20, 50) holds 20, 35, 40, 45
    assert per_slice([0.5, 29.0, 30.0, 95.0], start=0.0) == [2, 1, 0, 1]


def test_each_orphan_is_traced_to_a_log_line_a_kill_or_a_lost_create_or_left_unexplained() -> None:
    orphans = [("logged", 100.0), ("killed", 100.0), ("lost", 200.0), ("other", 500.0)]
    causes = classify_orphans(orphans, kills=[130.0], logged_ids=["logged"], lost_creates=[215.0])
    assert causes == {"logged": "logged", "killed": "kill", "lost": "lost_create", "other": "unexplained"}
    assert classify_orphans([("x", 100.0)], kills=[99.0], logged_ids=[], lost_creates=[]) == {"x": "unexplained"}  # killed before
