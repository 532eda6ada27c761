"""Storms answered fast (issue 13, item 2): a throttled token request is not held through the SDK's retry waits.

azure-core retries any answer that carries Retry-After, after waiting that long, up to three times:
with ACS's 429s (Retry-After up to 30 s) a sign-in storm would hold every request for a minute and
more. The user-facing client now gives a 429 straight back (with Retry-After plus jitter, so clients
do not return in step), and only waits out answers that ask for a second or less.
"""

from __future__ import annotations

import pytest

from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration


def test_a_throttled_issue_is_answered_at_once_with_a_spread_retry_after(dev_app, emulator, user):
    identity = post_json(dev_app.api("token"), None, as_user(user)).json()["communicationUserId"]
    waits = []
    for _ in range(12):
        emulator.set_faults(throttleNext=1, retryAfterSeconds=30)
        before = emulator.calls(identity).get("issue", 0)
        answer = post_json(dev_app.api("token"), None, as_user(user))
        assert answer.status_code == 429 and answer.json()["error"]["code"] == "throttled"
        assert emulator.calls(identity)["issue"] == before + 1  # ACS was asked once: no retry after 30 s
        waits.append(int(answer.headers["Retry-After"]))
    emulator.set_faults(throttleNext=0)
    assert all(30 <= wait <= 45 for wait in waits) and len(set(waits)) > 1  # spread, not in step


def test_a_short_outage_is_still_retried_inside_the_request(dev_app, emulator, user):
    assert post_json(dev_app.api("token"), None, as_user(user)).status_code == 200
    before = emulator.stats()["statuses"]
    emulator.set_faults(unavailableNext=1, retryAfterSeconds=1)
    answer = post_json(dev_app.api("token"), None, as_user(user))
    emulator.set_faults(unavailableNext=0)
    after = emulator.stats()["statuses"]
    assert answer.status_code == 200
    # the 503 (Retry-After: 1) was waited out and retried by the SDK, inside the request
    assert (after.get("issue:503", 0) - before.get("issue:503", 0), after.get("issue:200", 0) - before.get("issue:200", 0)) == (
        1,
        1,
    )
