"""A server-side Node caller: the official AzureCommunicationTokenCredential refreshing through our API.

node_client.cjs gets a token, moves the credential's clock (Date.now) to 4 s before expiry and lets
the credential's own proactive timer call the tokenRefresher, which calls POST /api/token/refresh.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.clients import CLIENTS_DIR, await_count, count_requests, requires_node, run_node

pytestmark = pytest.mark.integration

SCRIPT = CLIENTS_DIR / "node_client.cjs"


@requires_node
def test_node_credential_refreshes_proactively_through_the_api(app_factory, emulator) -> None:
    app = app_factory()
    user = f"node-{uuid.uuid4().hex[:12]}"
    refreshes_before = count_requests(app, "POST", "/api/token/refresh", 200)

    result = run_node(SCRIPT, f"{app.url}/api", user)

    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    issued, refreshed = answer["issued"], answer["refreshed"]
    assert issued["communicationUserId"].startswith("8:acs:")
    # the refresh is for the same ACS identity, with the scopes asked for
    assert refreshed["communicationUserId"] == issued["communicationUserId"]
    assert sorted(refreshed["scopes"]) == ["chat", "voip"]
    assert refreshed["token"] != issued["token"]
    # the credential's proactive timer called the refresher, and now hands out the new token
    assert answer["refresherCalls"] >= 1
    assert answer["credentialToken"] == refreshed["token"]
    # ... and those calls really went through our endpoint (one log line per request)
    calls = answer["refresherCalls"]
    assert await_count(app, "POST", "/api/token/refresh", 200, at_least=refreshes_before + calls) - refreshes_before >= calls
    assert emulator.validate(refreshed["token"])["valid"] is True
    # a caller with no identity yet gets the service's 404 through getToken(), never a new identity
    assert answer["strangerError"] == {"status": 404, "code": "identity_not_found"}
