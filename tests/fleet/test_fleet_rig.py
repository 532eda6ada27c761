"""Three devhost instances behind HAProxy, one Azurite, one emulator with ACS's real limits: a bounded smoke run.

Under a small mixed load (a few hundred requests from dev users through the balancer): the instance holding the
revocation timer's lock is SIGKILLed, taken out of the pool, restarted and back in it; another instance takes the
timer over once the dead holder's lease has expired (azure-webjobs-sdk ``SingletonListener``: the other instances
poll for the listener lock) and runs the missed occurrence as past due (azure-webjobs-sdk-extensions
``ScheduleMonitor.CheckPastDueAsync``); then Azurite restarts with its data kept. Every answer must be a success
or a 429/503 with Retry-After and a JSON body, every client gets what it asked for, nothing is orphaned in ACS,
no revocation is lost, and each timer occurrence completes on one instance only.

Known failure (found by this rig): ``shared/token_service.py`` caches "user -> ACS id" per worker process. After a
user deletes its identity on one instance and signs in again there (a new identity), another instance still holds
the old id: its revoke answers 204 while the new identity's tokens stay valid (a lost revocation), and its
refresh answers 404 to a user who has an identity. The two reproductions below and the scenario's
``revocations``/``identities`` invariants are expected to fail until that cache is made safe across instances;
``strict=True`` on the reproductions turns the fix into a visible XPASS so the marks get removed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localdev.fleet import Fleet, FleetOptions, start_fleet
from localdev.fleet.haproxy import INSTANCE_HEADER
from localdev.fleet.load import SUCCESS, Answer, LoadDriver, Recorder
from localdev.fleet.verify import check_timer_once, lock_acquisitions, timer_runs, verify_fleet

pytestmark = [pytest.mark.integration, pytest.mark.fleet]

OPTIONS = FleetOptions(instances=3, schedule="*/2 * * * * *", lock_seconds=15, lock_recovery_seconds=2.0)
USERS_PER_ROUND = 20


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
