"""Bad input gets a precise 4xx with a JSON error body, and changes nothing."""

from __future__ import annotations

import pytest
import requests

from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def raw_post(app, path, data: bytes, content_type: str | None = "application/json", user="bad-input-user"):
    headers = as_user(user)
    if content_type:
        headers["Content-Type"] = content_type
    return requests.post(app.api(path), data=data, headers=headers, timeout=30)


@pytest.mark.parametrize("path", ["token", "token/refresh", "token/teams"])
def test_malformed_json(dev_app, path):
    assert_error(raw_post(dev_app, path, b'{"scopes": ["voip"'), 400, "invalid_json")


@pytest.mark.parametrize("data", [b"[]", b'"voip"', b"42", b"null"])
def test_body_must_be_an_object(dev_app, data):
    assert_error(raw_post(dev_app, "token", data), 400, "invalid_body")


def test_non_json_content_type_is_415(dev_app):
    assert_error(raw_post(dev_app, "token", b"scopes=voip", "application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    assert_error(raw_post(dev_app, "token", b'{"scopes":["voip"]}', None), 415, "unsupported_media_type")


def test_oversized_body_is_413(dev_app):
    big = b'{"scopes": ["voip"], "pad": "' + b"x" * (17 * 1024) + b'"}'
    assert_error(raw_post(dev_app, "token", big), 413, "body_too_large")


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"scopes": ["video"]}, 400, "invalid_scopes"),
        ({"scopes": []}, 400, "invalid_scopes"),
        ({"scopes": "voip"}, 400, "invalid_scopes"),
        ({"scopes": ["chat.join"]}, 403, "scope_not_allowed"),
        ({"expiresInMinutes": 59}, 400, "invalid_expiry"),
        ({"expiresInMinutes": 1441}, 400, "invalid_expiry"),
        ({"expiresInMinutes": "60"}, 400, "invalid_expiry"),
        ({"userId": "someone"}, 400, "unknown_field"),
    ],
)
def test_bad_token_requests(dev_app, body, status, code):
    error = assert_error(post_json(dev_app.api("token"), body, as_user("bad-input-user")), status, code)
    if status == 400 and code != "unknown_field":
        assert error["target"] in ("scopes", "expiresInMinutes")


def test_bad_requests_create_nothing(dev_app, emulator):
    before = emulator.stats()
    for body in ({"scopes": ["video"]}, {"expiresInMinutes": 5}, {"scopes": ["chat.join"]}):
        post_json(dev_app.api("token"), body, as_user("never-created"))
    assert post_json(dev_app.api("token/refresh"), None, as_user("never-created")).status_code == 404
    after = emulator.stats()
    assert operation_count(after, "create") == operation_count(before, "create")


def operation_count(stats: dict, word: str) -> int:
    """Sum the emulator's per-operation counters whose name mentions ``word``."""
    return sum(
        (count if isinstance(count, int) else sum(count.values()) if isinstance(count, dict) else 0)
        for name, count in stats.get("operations", stats).items()
        if word in name.lower()
    )


@pytest.mark.parametrize(
    "method, path, allowed",
    [("GET", "token", "POST"), ("PUT", "token/refresh", "POST"), ("POST", "identity", "DELETE"), ("DELETE", "health", "GET")],
)
def test_wrong_method_is_405_with_allow(dev_app, method, path, allowed):
    response = requests.request(method, dev_app.api(path), headers=as_user("bad-input-user"), timeout=30)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("path", ["token", "token/refresh", "token/revoke", "token/teams"])
def test_missing_credentials_is_401(dev_app, path):
    assert_error(requests.post(dev_app.api(path), timeout=30), 401, "unauthenticated")


def test_missing_credentials_on_delete_is_401(dev_app):
    assert_error(requests.delete(dev_app.api("identity"), timeout=30), 401, "unauthenticated")


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "invalid_body"),
        ({"teamsToken": "x", "clientId": "not-a-guid", "userObjectId": "00000000-0000-0000-0000-000000000000"}, "invalid_body"),
        (
            {
                "teamsToken": "",
                "clientId": "00000000-0000-0000-0000-000000000000",
                "userObjectId": "00000000-0000-0000-0000-000000000000",
            },
            "invalid_body",
        ),
        (
            {
                "teamsToken": "x",
                "clientId": "00000000-0000-0000-0000-000000000000",
                "userObjectId": "00000000-0000-0000-0000-000000000000",
                "extra": 1,
            },
            "unknown_field",
        ),
    ],
)
def test_bad_teams_requests(dev_app, body, code):
    assert_error(post_json(dev_app.api("token/teams"), body, as_user("bad-input-user")), 400, code)


def test_teams_body_is_required(dev_app):
    assert_error(raw_post(dev_app, "token/teams", b"", None), 400, "missing_body")
