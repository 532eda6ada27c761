"""Two ACS resources, one storage account: mappings made with resource A never break an app on resource B.

Real ACS answers 401 ``IdentityNotOwned`` ("Provided identity doesn't belong to the resource.") for an
identity of another resource (Azure/azure-sdk-assets, the Python SDK's recordings, tag
python/communication/azure-communication-identity_76a3062f95; emulator/references.py). That happens
when a deployment moves to a new ACS resource, storage is shared between environments, or a backup is
restored. Two emulators with different resource ids play A and B here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from localdev.emulator_process import EmulatorProcess, start_emulator
from tests.support.app_process import AppProcess, as_user, post_json

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def resource_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(cert_dir=tmp_path_factory.mktemp("resource-b"), resource_name="acs-b") as process:
        yield process


@pytest.fixture(scope="module")
def apps(app_factory, emulator, resource_b) -> tuple[AppProcess, AppProcess]:
    """The same identity table and ledger, first on resource A (the session's emulator), then on B."""
    suffix = uuid.uuid4().hex[:10]
    shared_storage = {"IDENTITY_TABLE_NAME": "ids" + suffix, "REVOCATION_TABLE_NAME": "rev" + suffix}
    on_a = app_factory(**shared_storage)
    on_b = app_factory(
        **shared_storage, ACS_CONNECTION_STRING=resource_b.connection_string, ACS_CA_BUNDLE=str(resource_b.cert_path)
    )
    assert emulator.resource_id != resource_b.resource_id
    return on_a, on_b


def token_for(app: AppProcess, user: str, path: str = "token") -> requests.Response:
    return post_json(app.api(path), {"scopes": ["voip"]}, as_user(user))


def test_a_user_mapped_in_resource_a_gets_a_working_token_from_resource_b(apps, emulator, resource_b, user) -> None:
    on_a, on_b = apps
    first = token_for(on_a, user)
    assert first.status_code == 200, first.text
    old_id = first.json()["communicationUserId"]
    assert old_id.startswith(f"8:acs:{emulator.resource_id}_")

    answer = token_for(on_b, user)
    assert answer.status_code == 200, answer.text  # not 500 misconfigured
    body = answer.json()
    assert body["communicationUserId"].startswith(f"8:acs:{resource_b.resource_id}_")
    assert resource_b.validate(body["token"])["valid"] is True
    again = token_for(on_b, user, "token/refresh")  # and from now on it is the user's identity in B
    assert again.status_code == 200 and again.json()["communicationUserId"] == body["communicationUserId"]
    assert emulator.validate(first.json()["token"])["valid"] is True  # A's identity is left alone (kept as previous)


def test_refresh_never_creates_and_revoke_has_nothing_to_do_in_b(apps, user) -> None:
    on_a, on_b = apps
    assert token_for(on_a, user).status_code == 200
    refresh = token_for(on_b, user, "token/refresh")
    assert refresh.status_code == 404 and refresh.json()["error"]["code"] == "identity_not_found"
    revoke = post_json(on_b.api("token/revoke"), None, as_user(user))
    assert revoke.status_code == 204


def test_the_sweep_in_b_completes_requests_about_a_identities_and_reports_them(apps, emulator, user) -> None:
    on_a, on_b = apps
    token = token_for(on_a, user).json()["token"]
    recorded = post_json(on_b.api("ops/revocations"), {"userId": user, "reason": "incident"})
    assert recorded.status_code == 202
    run = requests.post(f"{on_b.url}/admin/functions/revocation_sweep", json={}, timeout=30)
    assert run.status_code == 202
    deadline, status = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        status = requests.get(on_b.api("ops/revocations/status"), timeout=30).json()
        if (status.get("lastRun") or {}).get("foreign"):
            break
        time.sleep(0.2)
    assert status["lastRun"]["foreign"] == 1 and status["lastRun"]["failed"] == 0
    assert status["pendingRequests"] == 0  # done, not retried forever
    assert emulator.validate(token)["valid"] is True  # B cannot revoke A's tokens; the operator is told (foreign)
