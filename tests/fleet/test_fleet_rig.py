"""Three devhost instances behind HAProxy, one Azurite, one emulator with ACS's real limits: a bounded smoke run.

Under a small mixed load (a few hundred requests from dev users through the balancer): the instance holding the
revocation timer's lock is SIGKILLed, taken out of the pool, restarted and back in it; another instance takes the
timer over once the dead holder's lease has expired (azure-webjobs-sdk ``SingletonListener``: the other instances
poll for the listener lock) and runs the missed occurrence as past due (azure-webjobs-sdk-extensions
``ScheduleMonitor.CheckPastDueAsync``); then Azurite restarts with its data kept. Every answer must be a success
or a 429/503 with Retry-After and a JSON body, every client gets what it asked for, nothing is orphaned in ACS,
no revocation is lost, and each timer occurrence completes on one instance only.

An incident campaign (``POST /api/ops/campaigns``) swept by every instance at once stays within the fleet's
revoke budget (``REVOCATION_RATE_PER_30S``, here 96) in every sliding 30 s, judged by the emulator's call log.

Found by this rig and fixed since: ``shared/domain/token_service.py`` cached "user -> ACS id" per worker process,
so after a user deleted its identity on one instance and signed in again there, another instance's revoke reached
the deleted identity (a lost revocation) and its refresh answered 404. The two reproductions below pin the fix.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from localdev.fleet import Fleet, FleetOptions, start_fleet
from localdev.fleet.attribution import max_in_window, read_calls
from localdev.fleet.haproxy import INSTANCE_HEADER
from localdev.fleet.load import SUCCESS, Answer, LoadDriver, Recorder
from localdev.fleet.verify import check_timer_once, lock_acquisitions, timer_runs, verify_fleet

pytestmark = [pytest.mark.integration, pytest.mark.fleet]

#: the fleet's revoke budget (REVOCATION_RATE_PER_30S): 6 per 2-second window, so the campaign below outlasts 30 s
REVOCATION_RATE = 96
OPTIONS = FleetOptions(
    instances=3,
    schedule="*/2 * * * * *",
    lock_seconds=15,
    lock_recovery_seconds=2.0,
    app_settings={"REVOCATION_RATE_PER_30S": str(REVOCATION_RATE)},
)
USERS_PER_ROUND = 20
CAMPAIGN_USERS = 50


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with start_fleet(tmp_path_factory.mktemp("fleet"), OPTIONS) as running:
        yield running


def test_requests_through_the_balancer_reach_every_instance(fleet: Fleet) -> None:
    answered: Counter[str] = Counter()
    for _ in range(30):
        response = requests.get(fleet.api("health"), timeout=10)
        assert response.status_code == 200
        answered[response.headers[INSTANCE_HEADER]] += 1
    assert set(answered) == set(fleet.names)  # round robin: every instance answered
    assert all(state.up for state in fleet.server_states().values())


def on(instance_url: str, method: str, path: str, user: str) -> requests.Response:
    """A request straight to one instance, bypassing the balancer."""
    body: dict[str, Any] | None = {"scopes": ["voip"]} if path.startswith("token") and not path.endswith("revoke") else None
    return requests.request(method, f"{instance_url}/api/{path}", json=body, headers={"X-Dev-User": user}, timeout=60)


def deleted_and_recreated_on_b(fleet: Fleet) -> tuple[str, str, str]:
    """A user known to instance A whose identity instance B deleted and re-created: (user, old token, new token)."""
    a, b = fleet.instances[0].url, fleet.instances[1].url
    user = f"cache-{uuid.uuid4().hex[:10]}"
    first = on(a, "POST", "token", user).json()  # A now caches user -> first identity
    assert on(b, "DELETE", "identity", user).status_code == 204
    second = on(b, "POST", "token", user).json()
    assert second["communicationUserId"] != first["communicationUserId"]
    return user, first["token"], second["token"]


def test_a_revoke_on_another_instance_kills_the_tokens_of_the_identity_created_after_a_delete(fleet: Fleet) -> None:
    user, _, new_token = deleted_and_recreated_on_b(fleet)
    assert on(fleet.instances[0].url, "POST", "token/revoke", user).status_code == 204
    # Found by this rig: A's per-worker cache held the deleted identity, so the revoke reached it and
    # the new identity's tokens stayed valid. Revokes now read the identity map.
    assert fleet.emulator.validate(new_token)["valid"] is False


def test_a_refresh_on_another_instance_finds_the_identity_created_after_a_delete(fleet: Fleet) -> None:
    user, _, _ = deleted_and_recreated_on_b(fleet)
    assert on(fleet.instances[0].url, "POST", "token/refresh", user).status_code == 200  # was a 404 from A's stale cache


def sign_in(fleet: Fleet, user: str) -> dict[str, Any]:
    response = requests.post(fleet.api("token"), json={"scopes": ["voip"]}, headers={"X-Dev-User": user}, timeout=60)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def sweep_on(instance_url: str) -> int:
    """One sweep run on one instance through the host's admin API (it answers when the run is over)."""
    return requests.post(f"{instance_url}/admin/functions/revocation_sweep", json={}, timeout=300).status_code


def test_a_campaign_swept_by_every_instance_at_once_stays_within_the_fleet_budget(fleet: Fleet) -> None:
    """Four sweeps at once (the timer's holder every 2 s, and one started by hand on each instance) draw on one budget.

    Each instance alone would pace itself at REVOCATION_RATE per 30 s; the fleet budget (shared slots in Table
    storage, shared/domain/revocation/budget.py) must hold all of them together to that rate. The emulator's
    per-identity call log has the time of every revoke ACS received; no user revokes during this test, so every
    revoke after the campaign started is the sweep's.

    Runs at once do not divide a campaign between them: each revokes the candidates whose LastRevokedAt the
    others have not recorded yet (150 candidates cost 463 revokes with four runs), so what bounds ACS here is
    the budget, not the candidate count. On the platform only the timer's holder runs the sweep (a singleton);
    runs started by hand through the admin API are what overlaps it.
    """
    prefix = f"camp-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(16) as pool:
        grants = list(pool.map(lambda n: sign_in(fleet, f"{prefix}-{n}"), range(CAMPAIGN_USERS)))
    started = time.time()
    answer = requests.post(fleet.api("ops/campaigns"), json={"reason": "fleet test incident"}, timeout=30)
    assert answer.status_code == 202, answer.text
    campaign_id = answer.json()["id"]
    with ThreadPoolExecutor(len(fleet.instances)) as pool:
        assert list(pool.map(sweep_on, [instance.url for instance in fleet.instances])) == [202] * len(fleet.instances)
    deadline = time.monotonic() + 60
    while (progress := requests.get(fleet.api(f"ops/campaigns/{campaign_id}"), timeout=30).json())["status"] == "active":
        assert time.monotonic() < deadline, progress
        time.sleep(1)
    assert progress["status"] == "done" and progress["failed"] == 0, progress

    revokes = [call for call in read_calls(fleet.emulator, ("revoke",)).calls if call.at >= started]
    assert {grant["communicationUserId"] for grant in grants} <= {call.identity for call in revokes}
    most, _ = max_in_window([call.at for call in revokes])
    # Bounded by the budget, with one window's share of slack: the budget counts a call when it is claimed, the
    # emulator when it answers, so a call held up past the next window boundary can land beside that window's.
    assert most <= REVOCATION_RATE + REVOCATION_RATE // 16, most
    assert most >= REVOCATION_RATE * 3 // 4, most  # the sweeps did press against the budget (else this proves nothing)
    assert [fleet.emulator.validate(grant["token"])["valid"] for grant in grants] == [False] * CAMPAIGN_USERS


async def keep_loading(driver: LoadDriver, stop: asyncio.Event) -> None:
    """Rounds of new dev users doing the mixed script until ``stop``, then one more round."""
    round_number = 0
    while True:
        users = [f"r{round_number}-u{index}" for index in range(USERS_PER_ROUND)]
        await driver.mixed(users, ops_per_user=6, concurrency=8, think_seconds=0.5)
        round_number += 1
        if stop.is_set():
            return


def during(answers: list[Answer], start: float, end: float) -> Counter[int]:
    return Counter(answer.status for answer in answers if start <= answer.sent <= end)


async def test_a_killed_timer_holder_and_an_azurite_restart_under_load_break_no_invariant(fleet: Fleet) -> None:
    recorder = Recorder()
    done = asyncio.Event()
    async with LoadDriver(fleet.url, recorder) as driver:
        load = asyncio.ensure_future(keep_loading(driver, done))
        try:
            await asyncio.sleep(3)
            holder = fleet.timer_holder()
            assert holder in fleet.names, "no instance holds the timer's lock"
            index = fleet.names.index(holder)
            recorder.mark("kill")
            killed_at = time.time()
            await asyncio.to_thread(fleet.kill, index)  # raises unless HAProxy takes it out
            await asyncio.sleep(3)
            await asyncio.to_thread(fleet.restart, index)  # raises unless it is back in the pool
            recorder.mark("restarted")

            # the lease of the dead holder expires (at most 15 s) and an instance polling for it takes the timer
            for _ in range(60):
                if any(at > killed_at for at, _ in lock_acquisitions(fleet)):
                    break
                await asyncio.sleep(0.5)
            recorder.mark("azurite down")
            await asyncio.to_thread(fleet.restart_azurite)
            recorder.mark("azurite up")
            await asyncio.sleep(4)
        finally:
            done.set()
            await load

    marks = {what: at for at, what in recorder.marks}
    report = await asyncio.to_thread(verify_fleet, fleet, recorder)
    print("fleet smoke figures:", report.figures)  # shown with -s; the report names every violation
    assert report.violations() == []  # incl. no lost revocation and one identity per user on every instance
    assert len(recorder.answers) >= 300

    ok_or_unavailable = set().union(*SUCCESS.values()) | {503}
    around_kill = during(recorder.answers, marks["kill"] - 0.5, marks["kill"] + 3)
    around_azurite = during(recorder.answers, marks["azurite down"], marks["azurite up"] + 3)
    assert around_kill and set(around_kill) <= ok_or_unavailable, around_kill
    assert around_azurite and set(around_azurite) <= ok_or_unavailable, around_azurite
    assert any(a.instance == holder for a in recorder.answers if a.sent > marks["restarted"])  # it rejoined

    runs = timer_runs(fleet)
    assert check_timer_once(runs, killed={holder}) == []
    assert len({run.occurrence for run in runs if run.done}) >= 5
    taken_over = [name for at, name in lock_acquisitions(fleet) if at > killed_at]
    assert taken_over, "no instance took the timer over after its holder was killed"
    assert any(run.past_due and run.at > killed_at for run in runs)  # the occurrence missed meanwhile ran, late
    assert {run.instance for run in runs if run.at < killed_at} == {holder}  # before the kill: one instance only
