"""The logged user reference over HTTP (issue 11, finding 8): keyed, stable, never the plain hash of the user."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import pytest

from shared.domain.caller import user_key
from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration


def logged_refs(app, function: str, at_least: int = 1) -> list[str]:
    """The user references of ``function``'s log lines, once there are ``at_least`` (the log is read by a thread)."""
    deadline = time.monotonic() + 10
    while True:
        refs = re.findall(rf"request function={function} .* user=([0-9a-f]+) ", app.log_text())
        if len(refs) >= at_least or time.monotonic() > deadline:
            return refs


def test_a_guessed_user_id_cannot_be_confirmed_from_the_log(app_factory, user):
    app = app_factory()
    for _ in range(2):
        assert post_json(app.api("token"), None, as_user(user)).status_code == 200
    refs = logged_refs(app, "issue_token", at_least=2)
    assert len(refs) == 2 and refs[0] == refs[1]  # stable: an operator can follow one user
    plain = hashlib.sha256(user_key("dev", user).encode()).hexdigest()
    assert plain[:16] not in app.log_text() and user not in app.log_text()


def test_a_configured_key_is_the_one_used(app_factory, user):
    key = "an-operator-managed-secret-of-40-chars!!"
    app = app_factory(USER_REF_KEY=key)
    assert post_json(app.api("token"), None, as_user(user)).status_code == 200
    expected = hmac.new(key.encode(), user_key("dev", user).encode(), hashlib.sha256).hexdigest()[:16]
    assert logged_refs(app, "issue_token") == [expected]


def test_a_short_configured_key_is_a_named_setting_error(app_factory, user):
    app = app_factory(USER_REF_KEY="short")
    answer = post_json(app.api("token"), None, as_user(user))
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "misconfigured"
    assert "USER_REF_KEY" in app.wait_log("USER_REF_KEY") and "short" not in answer.text
