"""The incident campaign endpoints over HTTP (issue 12, item 1): start, progress, cancel, and bad input."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ops(app_factory):
    return app_factory(REVOCATION_TABLE_NAME="camp" + str(int(time.time() * 1000) % 10**9))


def test_start_watch_and_finish_a_campaign(ops, emulator, user):
    token = post_json(ops.api("token"), None, as_user(user)).json()["token"]
    started = post_json(ops.api("ops/campaigns"), {"reason": "leaked signing key"})
    assert started.status_code == 202
    campaign = started.json()
    assert (campaign["status"], campaign["reason"], campaign["remaining"]) == ("active", "leaked signing key", 0)
    assert campaign["statusUrl"] == f"/api/ops/campaigns/{campaign['id']}"
    status = requests.get(ops.api("ops/revocations/status"), timeout=30).json()
    assert [c["id"] for c in status["campaigns"]] == [campaign["id"]]

    assert requests.post(f"{ops.url}/admin/functions/revocation_sweep", json={}, timeout=60).status_code == 202
    deadline, current = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        current = requests.get(ops.api(f"ops/campaigns/{campaign['id']}"), timeout=30).json()
        if current["status"] != "active":
            break
        time.sleep(0.2)
    assert (current["status"], current["revoked"], current["remaining"], current["etaSeconds"]) == ("done", 1, 0, 0)
    assert emulator.validate(token)["reason"] == "revoked"
    again = post_json(ops.api("token/refresh"), None, as_user(user))  # one refresh and the user is back
    assert again.status_code == 200 and emulator.validate(again.json()["token"])["valid"] is True
    ended = post_json(ops.api(f"ops/campaigns/{campaign['id']}/cancel"), None)
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "campaign_ended"


def test_cancel_and_the_answers_to_bad_input(ops):
    campaign = post_json(ops.api("ops/campaigns"), {"reason": "drill", "before": "2026-01-01T00:00:00Z"}).json()
    assert campaign["before"] == "2026-01-01T00:00:00Z"
    cancelled = post_json(ops.api(f"ops/campaigns/{campaign['id']}/cancel"), None)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert requests.get(ops.api("ops/campaigns/cffffffffffff"), timeout=30).status_code == 404
    assert requests.get(ops.api("ops/campaigns/not-an-id"), timeout=30).json()["error"]["code"] == "campaign_not_found"
    for body, target in (
        ({}, "reason"),
        ({"reason": "x", "before": "yesterday"}, "before"),
        ({"reason": "x", "before": "2999-01-01T00:00:00Z"}, "before"),
    ):
        refused = post_json(ops.api("ops/campaigns"), body)
        assert refused.status_code == 400 and refused.json()["error"]["target"] == target
    assert post_json(ops.api("ops/campaigns"), {"reason": "x", "who": "everyone"}).json()["error"]["code"] == "unknown_field"
