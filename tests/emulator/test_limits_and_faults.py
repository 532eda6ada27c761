"""Rate limits and fault injection, seen through the official SDK."""

from __future__ import annotations

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import HttpResponseError

pytestmark = pytest.mark.integration


def test_one_throttle_with_retry_after_is_retried_by_the_sdk(client, emulator):
    user = client.create_user()
    emulator.set_faults(throttleNext=1, retryAfterSeconds=1)
    token = client.get_token(user, ["voip"])
    assert emulator.validate(token.token)["valid"] is True
    stats = emulator.stats()
    assert stats["statuses"]["issue:429"] == 1 and stats["statuses"]["issue:200"] == 1
    assert stats["operations"]["issue"] == 2  # the SDK tried twice


def test_throttling_without_retry_budget_surfaces_as_429(emulator):
    client = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=0
    )
    emulator.set_faults(throttleNext=1, retryAfterSeconds=7)
    with pytest.raises(HttpResponseError) as caught:
        client.create_user()
    assert caught.value.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.error.code == "TooManyRequests"


def test_outage_surfaces_as_503_after_retries(emulator):
    client = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=1, retry_backoff_factor=0.01
    )
    emulator.set_faults(unavailableNext=5, retryAfterSeconds=1)
    with pytest.raises(HttpResponseError) as caught:
        client.create_user()
    assert caught.value.status_code == 503
    assert emulator.stats()["statuses"]["create:503"] == 2  # one try, one retry


def test_rate_limit_at_run_time(emulator):
    client = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=0
    )
    user = client.create_user()
    emulator.set_limits(issue={"count": 3, "windowSeconds": 30})
    try:
        for _ in range(3):
            client.get_token(user, ["voip"])
        with pytest.raises(HttpResponseError) as caught:
            client.get_token(user, ["voip"])
        assert caught.value.status_code == 429
        assert 1 <= int(caught.value.response.headers["Retry-After"]) <= 30
        client.revoke_tokens(user)  # other operations have their own budget
    finally:
        emulator.set_limits(issue={"count": 1000, "windowSeconds": 30})


def test_throttle_rate_one_throttles_everything(emulator):
    client = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=0
    )
    emulator.set_faults(throttleRate=1.0)
    with pytest.raises(HttpResponseError) as caught:
        client.create_user()
    assert caught.value.status_code == 429


def test_latency_is_added(client, emulator):
    import time

    emulator.set_faults(latencyMs=300)
    started = time.perf_counter()
    client.create_user()
    # not a performance assertion: the injected delay must be visible at all
    assert time.perf_counter() - started >= 0.3


def test_bad_fault_settings_are_rejected(emulator):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as caught:
        emulator.set_faults(throttleRate=2)
    assert caught.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        emulator.set_faults(explode=1)


def test_faults_and_limits_from_the_command_line(tmp_path):
    from azure.communication.identity import CommunicationUserIdentifier
    from azure.core.exceptions import ResourceNotFoundError

    from localdev.emulator_process import start_emulator

    with start_emulator("--fault-throttle-next", "1", "--fault-retry-after", "2", "--limit-delete", "1", "--limit-window", "60",
                        cert_dir=tmp_path) as emulator:
        assert emulator.faults()["throttleNext"] == 1
        limits = emulator.call("GET", "limits")
        assert limits["delete"] == {"count": 1, "windowSeconds": 60.0} and limits["issue"]["count"] == 1000
        client = CommunicationIdentityClient.from_connection_string(
            emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=0
        )
        with pytest.raises(HttpResponseError) as caught:
            client.create_user()
        assert caught.value.status_code == 429 and caught.value.response.headers["Retry-After"] == "2"
        user = client.create_user()
        client.delete_user(user)
        with pytest.raises(HttpResponseError) as caught:
            client.delete_user(CommunicationUserIdentifier("8:acs:unknown_1"))
        assert caught.value.status_code == 429 and not isinstance(caught.value, ResourceNotFoundError)
        assert 1 <= int(caught.value.response.headers["Retry-After"]) <= 60
        assert emulator.stats()["statuses"] == {"create:429": 1, "create:201": 1, "delete:204": 1, "delete:429": 1}
