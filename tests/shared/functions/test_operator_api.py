"""The operators' endpoints over real HTTP (devhost), and the sweep run by hand as the host's admin API does."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from azure.storage.queue import QueueClient

from shared.adapters.fanout import host_encoding
from shared.domain.revocation.work import encode_batch
from tests.support.app_process import launch_app

pytestmark = pytest.mark.integration

OPS = "ops/revocations"


@pytest.fixture(scope="module")
def app_env(stand_ins):
    azurite, emulator = stand_ins
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "ACS_CONNECTION_STRING": emulator.connection_string,
        "ACS_CA_BUNDLE": str(emulator.cert_path),
        "AUTH_MODE": "dev",
        "TOKEN_RATE_LIMIT_PER_MINUTE": "1000",
        "REVOCATION_TABLE_NAME": "ops" + suffix,
        "REVOCATION_QUEUE_NAME": "ops-" + suffix,
    }


@pytest.fixture(scope="module")
def app(app_env):
    process = launch_app(app_env)
    yield process
    process.stop()


def post(app, path, body=None, *, raw: bytes | None = None, headers=None) -> requests.Response:
    if raw is not None:
        return requests.post(app.api(path), data=raw, headers={"Content-Type": "application/json", **(headers or {})}, timeout=30)
    return requests.post(app.api(path), json=body, headers=headers or {}, timeout=30)


@pytest.mark.parametrize(
    "body, code, target",
    [
        ({}, "invalid_body", "userId"),
        ({"userId": ""}, "invalid_body", "userId"),
        ({"userId": 42}, "invalid_body", "userId"),
        ({"userId": "u", "action": "explode"}, "invalid_body", "action"),
        ({"userId": "u", "communicationUserId": "8:acs:x"}, "unknown_field", None),
        ({"userId": "u" * 300}, "invalid_body", "userId"),
        ({"userId": "u", "reason": "r" * 201}, "invalid_body", "reason"),
        ([], "invalid_body", None),
        ([{"userId": "u"}] * 101, "too_many_requests_in_body", None),
        ([{"userId": "ok"}, "not an object"], "invalid_body", None),
        ("just a string", "invalid_body", None),
    ],
)
def test_bad_requests_are_clear_400s_and_record_nothing(app, body, code, target):
    response = post(app, OPS, body)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("target") == target
    assert requests.get(app.api(f"{OPS}/status"), timeout=30).json()["pendingRequests"] == 0


def test_malformed_json_missing_body_wrong_type_and_oversized(app):
    assert post(app, OPS, raw=b'{"userId": ').json()["error"]["code"] == "invalid_json"
    assert post(app, OPS, raw=b"").json()["error"]["code"] == "missing_body"
    wrong_type = requests.post(app.api(OPS), data=b"userId=u", headers={"Content-Type": "text/plain"}, timeout=30)
    assert wrong_type.status_code == 415
    big = post(app, OPS, raw=b'{"userId": "' + b"x" * 20_000 + b'"}')
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    wrong_method = requests.get(app.api(OPS), timeout=30)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"


def test_recorded_requests_are_done_by_a_manually_triggered_sweep(app, stand_ins):
    _, emulator = stand_ins
    user = f"ops-{uuid.uuid4().hex[:8]}"
    issued = post(app, "token", {"scopes": ["voip"]}, headers={"X-Dev-User": user})
    assert issued.status_code == 200
    token = issued.json()["token"]

    accepted = post(app, OPS, [{"userId": user, "reason": "compromised laptop"}, {"userId": "never-seen"}])
    assert accepted.status_code == 202
    assert accepted.json()["accepted"] == 2
    assert accepted.json()["requests"][0] == {
        "userId": user,
        "provider": "dev",
        "action": "revoke",
        "reason": "compromised laptop",
        "status": "pending",
    }
    assert requests.get(app.api(f"{OPS}/status"), timeout=30).json()["pendingRequests"] == 2
    assert emulator.validate(token)["valid"] is True

    run = requests.post(f"{app.url}/admin/functions/revocation_sweep", json={}, timeout=60)  # as the real host's admin API
    assert run.status_code == 202

    status = requests.get(app.api(f"{OPS}/status"), timeout=30).json()
    assert status["pendingRequests"] == 0 and status["poisonMessages"] == 0
    assert status["lastRun"]["revoked"] == 1 and status["lastRun"]["alreadyGone"] == 1
    assert emulator.validate(token)["reason"] == "revoked"
    assert "revocation sweep trigger=timer found=2 revoked=1" in app.log_text()
    assert token not in app.log_text()


def test_easyauth_mode_needs_the_provider(app_env):
    process = launch_app({**app_env, "AUTH_MODE": "easyauth"})
    try:
        missing = post(process, OPS, {"userId": "someone"})
        assert missing.status_code == 400 and missing.json()["error"]["target"] == "provider"
        given = post(process, OPS, {"userId": "someone", "provider": "aad"})
        assert given.status_code == 202 and given.json()["requests"][0]["provider"] == "aad"
    finally:
        process.stop()


def test_the_function_key_is_required_when_the_host_enforces_keys(app_env):
    process = launch_app({**app_env, "DEVHOST_FUNCTION_KEY": "ops-secret-key"})
    try:
        assert post(process, OPS, {"userId": "k"}).status_code == 401
        assert post(process, OPS, {"userId": "k"}, headers={"x-functions-key": "wrong"}).status_code == 401
        assert post(process, OPS, {"userId": "k"}, headers={"x-functions-key": "ops-secret-key"}).status_code == 202
        assert requests.get(process.api(f"{OPS}/status"), timeout=30).status_code == 401
        # the user-facing routes stay anonymous at the host level (the app authenticates callers)
        assert requests.get(process.api("health"), timeout=30).status_code == 200
    finally:
        process.stop()


def test_under_make_run_the_timer_and_the_queue_trigger_run_by_themselves(app_env, stand_ins):
    """DEVHOST_RUN_TRIGGERS=true (what `make run` sets): the schedule fires and queue batches are polled."""
    _, emulator = stand_ins
    process = launch_app({**app_env, "DEVHOST_RUN_TRIGGERS": "true", "REVOCATION_SCHEDULE": "*/1 * * * * *"})
    try:
        user = f"timer-{uuid.uuid4().hex[:8]}"
        token = post(process, "token", {}, headers={"X-Dev-User": user}).json()["token"]
        assert post(process, OPS, {"userId": user}).status_code == 202
        deadline = time.monotonic() + 20
        while emulator.validate(token)["valid"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert emulator.validate(token)["reason"] == "revoked"  # no manual trigger: the schedule did it

        azurite, _ = stand_ins
        queue = QueueClient.from_connection_string(azurite.connection_string, app_env["REVOCATION_QUEUE_NAME"])
        queue.send_message(host_encoding(encode_batch([])))
        deadline = time.monotonic() + 20
        status = {}
        while time.monotonic() < deadline:
            status = requests.get(process.api(f"{OPS}/status"), timeout=30).json()
            if status["lastBatch"] is not None:
                break
            time.sleep(0.2)
        assert status["lastBatch"]["trigger"] == "queue"
        assert "timer revocation_sweep: schedule */1 * * * * *" in process.log_text()
    finally:
        process.stop()
