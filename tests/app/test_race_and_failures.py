"""Concurrency and upstream failures: one identity per user, retryable errors with Retry-After."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.data.tables import TableClient

from tests.support import MAPPING_ROWS
from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration

CONCURRENT_FIRST_CALLS = 16


@pytest.fixture
def faults(emulator):
    yield emulator
    emulator.set_faults(throttleRate=0, unavailableRate=0, latencyMs=0, throttleNext=0, unavailableNext=0)


def test_concurrent_first_calls_yield_one_identity_and_no_orphans(dev_app, azurite, faults, user):
    emulator = faults
    # Slow ACS down so every first call is still creating when the others arrive: a real race.
    emulator.set_faults(latencyMs=150)
    before = emulator.stats()

    def first_call(_):
        return post_json(dev_app.api("token"), {"scopes": ["voip"]}, as_user(user))

    with ThreadPoolExecutor(CONCURRENT_FIRST_CALLS) as pool:
        responses = list(pool.map(first_call, range(CONCURRENT_FIRST_CALLS)))
    emulator.set_faults(latencyMs=0)
    assert [r.status_code for r in responses] == [200] * CONCURRENT_FIRST_CALLS
    ids = {r.json()["communicationUserId"] for r in responses}
    assert len(ids) == 1
    (acs_id,) = ids
    for response in responses:
        assert emulator.validate(response.json()["token"])["valid"] is True

    with TableClient.from_connection_string(azurite.connection_string, table_name=dev_app.table_name) as table:
        rows = [row for row in table.query_entities(MAPPING_ROWS) if row["AcsUserId"] == acs_id]
    assert len(rows) == 1

    # Every identity created by a losing request was deleted again: exactly one more live identity.
    after = emulator.stats()
    created = after["operations"].get("create", 0) - before["operations"].get("create", 0)
    deleted = after["operations"].get("delete", 0) - before["operations"].get("delete", 0)
    assert created >= 2, "the requests did race (more than one first call created an identity)"
    assert deleted == created - 1
    assert after["identities"]["live"] - before["identities"]["live"] == 1


def test_acs_throttling_becomes_429_with_retry_after(dev_app, faults, user):
    post_json(dev_app.api("token"), None, as_user(user))  # identity exists; the next call only issues
    faults.set_faults(throttleNext=10, retryAfterSeconds=1)
    response = post_json(dev_app.api("token/refresh"), None, as_user(user))
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "throttled"
    assert int(response.headers["Retry-After"]) >= 1
    faults.set_faults(throttleNext=0)
    assert post_json(dev_app.api("token/refresh"), None, as_user(user)).status_code == 200


def test_sdk_retries_a_single_throttle_transparently(dev_app, faults, user):
    post_json(dev_app.api("token"), None, as_user(user))
    faults.set_faults(throttleNext=1, retryAfterSeconds=1)
    response = post_json(dev_app.api("token/refresh"), None, as_user(user))
    assert response.status_code == 200


def test_acs_outage_becomes_503_with_retry_after(dev_app, faults, user):
    faults.set_faults(unavailableNext=10, retryAfterSeconds=1)
    response = post_json(dev_app.api("token"), None, as_user(user))
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert "Traceback" not in response.text


def test_storage_down_becomes_503_with_retry_after(app_factory):
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    app = app_factory(AzureWebJobsStorage=dead)
    response = post_json(app.api("token"), None, as_user("storage-down"))
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert "AccountKey" not in response.text and "Eby8" not in app.log_text()


def test_per_user_rate_limit_is_429_and_spares_other_users(app_factory):
    app = app_factory(TOKEN_RATE_LIMIT_PER_MINUTE="3")
    statuses = [post_json(app.api("token"), None, as_user("eager")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = post_json(app.api("token/refresh"), None, as_user("eager"))
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) == 20
    assert post_json(app.api("token"), None, as_user("patient")).status_code == 200


def test_misconfiguration_is_a_500_with_correlation_id_and_unhealthy(app_factory):
    app = app_factory(AUTH_MODE="")
    response = post_json(app.api("token"), None, as_user("someone"))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "misconfigured" and error["correlationId"]
    assert error["correlationId"] in app.wait_log(error["correlationId"])
    assert "Traceback" not in response.text
    health = requests.get(app.api("health"), timeout=30)
    assert health.status_code == 503
    assert "AUTH_MODE" in health.json()["checks"]["auth"]
