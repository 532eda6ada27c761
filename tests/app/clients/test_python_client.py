"""A Python caller: the official CommunicationTokenCredential (azure-communication-chat) refreshing via our API.

The credential decides when to refresh from its module's clock, ``get_current_utc_as_int`` (see
``azure/communication/chat/_shared/user_credential.py``): with ``proactive_refresh`` a token within
10 minutes of expiry is "expiring soon" and a ``threading.Timer`` refreshes it after half of the
remaining lifetime; without it, ``get_token()`` refreshes inside the last 2 minutes. ACS tokens live
at least 60 minutes, so instead of waiting we move that clock (only the credential's) forward, as if
the time had passed; the refresher itself is real: an HTTP call to POST /api/token/refresh.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
import requests
from azure.communication.chat import CommunicationTokenCredential
from azure.communication.chat._shared import user_credential as credential_module
from azure.core.credentials import AccessToken

from tests.support.app_process import AppProcess
from tests.support.clients import await_count, count_requests

pytestmark = pytest.mark.integration

REQUEST = {"scopes": ["chat", "voip"], "expiresInMinutes": 60}
WAIT_SECONDS = 20


class CredentialClock:
    """The credential's notion of now: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return int(time.time()) + self.offset

    def set_seconds_left(self, expires_on: int, seconds: int) -> None:
        """Make ``expires_on`` be ``seconds`` away for the credential."""
        self.offset = expires_on - seconds - int(time.time())


@pytest.fixture
def clock(monkeypatch) -> CredentialClock:
    fake = CredentialClock()
    monkeypatch.setattr(credential_module, "get_current_utc_as_int", fake)
    return fake


@pytest.fixture(scope="module")
def app(app_factory) -> AppProcess:
    return app_factory()


@pytest.fixture
def user() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


def call_api(app: AppProcess, path: str, user: str) -> dict:
    response = requests.post(app.api(path), json=REQUEST, headers={"X-Dev-User": user}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def expires_on_seconds(grant: dict) -> int:
    """Our API's RFC 3339 ``expiresOn`` as the epoch seconds AccessToken carries."""
    return int(datetime.fromisoformat(grant["expiresOn"].replace("Z", "+00:00")).timestamp())


class ApiRefresher:
    """The token_refresher: POST /api/token/refresh as the signed-in user; records who called it."""

    def __init__(self, app: AppProcess, user: str) -> None:
        self.app, self.user = app, user
        self.grants: list[dict] = []
        self.threads: list[str] = []
        self.refreshed = threading.Event()

    def __call__(self) -> AccessToken:
        grant = call_api(self.app, "token/refresh", self.user)
        self.grants.append(grant)
        self.threads.append(threading.current_thread().name)
        self.refreshed.set()
        return AccessToken(grant["token"], expires_on_seconds(grant))


@pytest.fixture
def refresher_for(app: AppProcess) -> Callable[[str], ApiRefresher]:
    return lambda user: ApiRefresher(app, user)


def test_proactive_refresh_runs_in_the_background_through_the_api(app, emulator, user, clock, refresher_for) -> None:
    issued = call_api(app, "token", user)
    refresher = refresher_for(user)
    before = count_requests(app, "POST", "/api/token/refresh", 200)
    clock.set_seconds_left(expires_on_seconds(issued), 4)  # 59 min 56 s later, for the credential

    with CommunicationTokenCredential(issued["token"], token_refresher=refresher, proactive_refresh=True) as credential:
        # entering schedules the timer (half of the 4 s left); nothing here calls get_token()
        assert refresher.refreshed.wait(WAIT_SECONDS), "the credential's proactive timer never called the refresher"
        current = credential.get_token()

    assert refresher.threads[0] != threading.current_thread().name  # the credential's Timer thread, not the test
    assert current.token in {grant["token"] for grant in refresher.grants}
    assert current.token != issued["token"]
    assert refresher.grants[0]["communicationUserId"] == issued["communicationUserId"]
    calls = len(refresher.grants)
    assert await_count(app, "POST", "/api/token/refresh", 200, at_least=before + calls) - before >= calls
    assert emulator.validate(current.token)["valid"] is True


def test_get_token_refreshes_on_demand_near_expiry(app, emulator, user, clock, refresher_for) -> None:
    issued = call_api(app, "token", user)
    refresher = refresher_for(user)
    with CommunicationTokenCredential(issued["token"], token_refresher=refresher) as credential:
        assert credential.get_token().token == issued["token"]  # 60 minutes left: no call
        assert refresher.grants == []

        clock.set_seconds_left(expires_on_seconds(issued), 60)  # inside the 2-minute window
        refreshed = credential.get_token()

    assert len(refresher.grants) == 1
    assert refresher.threads == [threading.current_thread().name]  # synchronously, in get_token()
    assert refreshed.token == refresher.grants[0]["token"] != issued["token"]
    assert emulator.validate(refreshed.token)["valid"] is True
    assert emulator.validate(issued["token"])["valid"] is True  # a refresh does not revoke the old token


def test_refresher_error_reaches_the_caller(app, user, clock) -> None:
    """Refresh never creates an identity: 404 identity_not_found surfaces from get_token()."""
    someone = call_api(app, "token", f"{user}-someone")  # any well-formed token to start from

    def refresher() -> AccessToken:
        response = requests.post(app.api("token/refresh"), json=REQUEST, headers={"X-Dev-User": user}, timeout=30)
        response.raise_for_status()
        raise AssertionError("refresh for a user without an identity succeeded")

    clock.set_seconds_left(expires_on_seconds(someone), 30)
    credential = CommunicationTokenCredential(someone["token"], token_refresher=refresher)
    with pytest.raises(requests.HTTPError) as raised:
        credential.get_token()
    assert raised.value.response.status_code == 404
    assert raised.value.response.json()["error"]["code"] == "identity_not_found"
