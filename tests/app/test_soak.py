"""Load and soak, bounded: a few thousand mixed requests through the app while ACS and storage misbehave.

Real parts only: the app over HTTP (devhost), Azurite with on-disk data (restarted mid-run), the
ACS emulator with injected 429 bursts, 503 windows and latency spikes. Afterwards: every answer was
a success or a retryable error with Retry-After, each user has one mapping and the emulator holds
exactly the mapped identities (no orphans), every recorded revocation is done, and every token
issued before a successful or accepted revoke or delete is dead.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from azure.data.tables import TableClient

from localdev.azurite import start_azurite
from localdev.emulator_process import start_emulator
from tests.support import MAPPING_ROWS
from tests.support.app_process import launch_app

pytestmark = pytest.mark.soak

THREADS = 8
USERS = 32
PER_PHASE = 500
OK = {200, 202, 204}
RETRYABLE = {429, 503}


@dataclass
class UserLog:
    """One user's history, in order (each user is driven by one thread only)."""

    tokens: list[str] = field(default_factory=list)
    killed_before: int = 0  # tokens[:killed_before] were issued before an accepted revoke/delete


@pytest.fixture(scope="module")
def soak_env(tmp_path_factory):
    with (
        start_azurite(location=tmp_path_factory.mktemp("azurite-disk"), queue_port=0, persistent=True) as azurite,
        start_emulator(cert_dir=tmp_path_factory.mktemp("cert")) as emulator,
    ):
        suffix = uuid.uuid4().hex[:10]
        app = launch_app(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "ACS_CONNECTION_STRING": emulator.connection_string,
                "ACS_CA_BUNDLE": str(emulator.cert_path),
                "AUTH_MODE": "dev",
                "TOKEN_RATE_LIMIT_PER_MINUTE": "0",
                "IDENTITY_TABLE_NAME": "soak" + suffix,
                "REVOCATION_TABLE_NAME": "soakrev" + suffix,
                "REVOCATION_QUEUE_NAME": "soak-" + suffix,
                "REVOCATION_RATE_PER_30S": "3000",
            }
        )
        try:
            yield azurite, emulator, app, "soak" + suffix
        finally:
            app.stop()


def drive(app, users: list[str], logs: dict[str, UserLog], seed: int, count: int, answers: Counter, problems: list[str]) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    for _ in range(count):
        user = rng.choice(users)
        roll = rng.random()
        headers = {"X-Dev-User": user}
        if roll < 0.55:
            op, response = "issue", session.post(app.api("token"), json={"scopes": ["voip"]}, headers=headers, timeout=60)
        elif roll < 0.8:
            op, response = "refresh", session.post(app.api("token/refresh"), headers=headers, timeout=60)
        elif roll < 0.93:
            op, response = "revoke", session.post(app.api("token/revoke"), headers=headers, timeout=60)
        else:
            op, response = "delete", session.delete(app.api("identity"), headers=headers, timeout=60)
        status = response.status_code
        answers[(op, status)] += 1
        if status in OK and op in ("issue", "refresh") and status == 200:
            logs[user].tokens.append(response.json()["token"])
        elif status in OK and op in ("revoke", "delete"):
            logs[user].killed_before = len(logs[user].tokens)
        elif status in RETRYABLE:
            if not response.headers.get("Retry-After", "").isdigit():
                problems.append(f"{op} {status} without Retry-After")
        elif not (op == "refresh" and status == 404):
            problems.append(f"{op} answered {status}: {response.text[:200]}")
        if status >= 400 and not response.headers.get("Content-Type", "").startswith("application/json"):
            problems.append(f"{op} {status} without a JSON body")


def run_phase(app, logs, seed: int, answers: Counter, problems: list[str]) -> None:
    names = sorted(logs)
    shards = [names[index::THREADS] for index in range(THREADS)]  # one thread per user: its history is ordered
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [
            pool.submit(drive, app, shard, logs, seed * 100 + index, PER_PHASE // THREADS, answers, problems)
            for index, shard in enumerate(shards)
        ]
        for future in futures:
            future.result(timeout=300)


def describe_orphans(emulator, mapped: set[str], log: str) -> list[dict]:
    """Each live identity no mapping points at: what ACS saw of it and the log lines that name it (for a failure)."""
    found = []
    for identity_id in emulator.identities():
        seen = emulator.identity(identity_id)
        if seen["exists"] and not seen["deleted"] and identity_id not in mapped:
            calls = {op: {k: v for k, v in c.items() if k != "recent"} for op, c in seen["calls"].items()}
            found.append({"calls": calls, "log": [line for line in log.splitlines() if identity_id in line][:5]})
    return found


def test_soak_with_faults_and_an_azurite_restart_loses_nothing(soak_env):
    azurite, emulator, app, identity_table = soak_env
    logs = {f"soak-{index}": UserLog() for index in range(USERS)}
    answers: Counter = Counter()
    problems: list[str] = []

    run_phase(app, logs, 1, answers, problems)  # normal service
    emulator.set_faults(throttleRate=0.15, retryAfterSeconds=1, latencyMs=20)  # 429 bursts
    run_phase(app, logs, 2, answers, problems)
    emulator.set_faults(throttleRate=0, latencyMs=0)

    def restart_storage() -> None:
        time.sleep(1.0)
        azurite.restart()

    restarter = threading.Thread(target=restart_storage)
    restarter.start()  # storage goes away and comes back mid-phase, data kept on disk
    run_phase(app, logs, 3, answers, problems)
    restarter.join(timeout=60)

    emulator.set_faults(unavailableRate=0.1, retryAfterSeconds=1, latencyMs=150)  # 503 windows, latency spike
    run_phase(app, logs, 4, answers, problems)
    emulator.set_faults(unavailableRate=0, latencyMs=0)

    assert problems == []
    assert sum(answers.values()) == 4 * (PER_PHASE // THREADS) * THREADS
    assert sum(n for (_, status), n in answers.items() if status in OK) > 0.5 * sum(answers.values())
    assert any(status in RETRYABLE for (_, status) in answers)  # the faults really reached callers

    # Let the sweep finish what ACS refused during the run (deferred requests wait a minute: bounded loop).
    deadline = time.monotonic() + 150
    while True:
        assert requests.post(f"{app.url}/admin/functions/revocation_sweep", json={}, timeout=120).status_code == 202
        status = requests.get(app.api("ops/revocations/status"), timeout=30).json()
        if status["pendingRequests"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert status["pendingRequests"] == 0, status

    with TableClient.from_connection_string(azurite.connection_string, identity_table) as table:
        mapped = [entity["AcsUserId"] for entity in table.query_entities(MAPPING_ROWS)]
    assert len(mapped) == len(set(mapped)) <= USERS  # one identity per user
    # Every other identity was deleted: no orphans, except one traced in the log for each create whose
    # answer was lost (ACS may have created it; nobody can know its id: README, "Orphan identities").
    traced = sum("if ACS created it anyway" in line for line in app.log_lines)
    orphans = emulator.stats()["identities"]["live"] - len(mapped)
    assert 0 <= orphans <= traced, (orphans, traced, describe_orphans(emulator, set(mapped), app.log_text()))

    for user, log in logs.items():
        for token in log.tokens[: log.killed_before]:
            verdict = emulator.validate(token)
            assert verdict["valid"] is False, (user, verdict)
