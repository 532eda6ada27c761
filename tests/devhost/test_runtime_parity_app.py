"""The real app through both of devhost's paths (Python 3.13+): the same requests, the same answers.

Two app processes on the session's Azurite and ACS emulator, one calling the functions itself
(``DEVHOST_WORKER=direct``), one running them inside azure-functions-runtime (``DEVHOST_WORKER=runtime``).
Every request goes to both, each path with its own users; answers are compared on status, the headers
that matter and the JSON body, with the values that must differ between two users (tokens, ACS ids,
expiry times, correlation ids) replaced by their shape.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests

from devhost.settings import runtime_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not runtime_available(), reason="azure-functions-runtime runs on Python 3.13+ (make test313)"),
]

FUNCTION_KEY = "parity-function-key"
ORIGIN = "https://app.example"
COMPARED_HEADERS = (
    "content-type",
    "cache-control",
    "allow",
    "retry-after",
    "www-authenticate",
    "vary",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
)
VOLATILE = {"token", "expiresOn", "communicationUserId", "correlationId"}


def shape(value: Any) -> Any:
    """Values that differ between two users or two runs, as their shape; the rest as they are."""
    if isinstance(value, dict):
        return {key: (kind(item) if key in VOLATILE else shape(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return value


def kind(value: Any) -> str:
    text = str(value)
    if re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", text):
        return "<jwt>"
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", text):
        return "<rfc3339 utc>"
    if text.startswith("8:acs:"):
        return "<acs id>"
    return f"<{type(value).__name__}>"


@pytest.fixture(scope="module")
def paths(app_factory):
    settings = {"DEVHOST_FUNCTION_KEY": FUNCTION_KEY, "DEVHOST_CORS": ORIGIN}
    apps = {mode: app_factory(DEVHOST_WORKER=mode, **settings) for mode in ("direct", "runtime")}
    assert "Functions run inside azure-functions-runtime" in apps["runtime"].wait_log("Functions run inside")
    assert "Functions run in devhost's process" in apps["direct"].wait_log("Functions run in devhost")
    return apps


def ask(app: Any, method: str, path: str, user: str | None, **options: Any) -> dict[str, Any]:
    headers = dict(options.pop("headers", {}))
    if user:
        headers["X-Dev-User"] = user
    response = requests.request(method, app.url + path, headers=headers, timeout=30, **options)
    try:
        body: Any = shape(response.json())
    except ValueError:
        body = response.content
    compared = {name: response.headers[name] for name in COMPARED_HEADERS if name in response.headers}
    return {"status": response.status_code, "headers": compared, "body": body}


#: (method, path, options); the user is one per path, created by the first request
SESSION: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/health", {}),
    ("POST", "/api/token/refresh", {}),  # before the first token: 404 identity_not_found
    ("POST", "/api/token", {"json": {"scopes": ["voip"], "expiresInMinutes": 60}}),
    ("POST", "/api/token", {}),
    ("POST", "/api/token/refresh", {"json": {"scopes": ["chat"]}}),
    ("POST", "/api/token", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/token", {"data": b"scopes=voip", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/api/token", {"json": {"scopes": ["voip"], "colour": "blue"}}),
    ("POST", "/api/token", {"json": {"scopes": ["chat.join"]}}),
    ("POST", "/api/token", {"json": {"expiresInMinutes": 5}}),
    ("POST", "/api/token", {"data": b'{"scopes": ["' + b"v" * 20_000 + b'"]}', "headers": {"Content-Type": "application/json"}}),
    ("GET", "/api/token", {}),
    (
        "POST",
        "/api/token/teams",
        {"json": {"teamsToken": "not-a-jwt", "clientId": str(uuid.UUID(int=1)), "userObjectId": str(uuid.UUID(int=2))}},
    ),
    ("GET", "/api/token", {"headers": {"Origin": ORIGIN}}),
    (
        "OPTIONS",
        "/api/token",
        {
            "headers": {
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            }
        },
    ),
    ("POST", "/api/token/revoke", {}),
    ("DELETE", "/api/identity", {}),
    ("DELETE", "/api/identity", {}),
    ("POST", "/api/ops/revocations", {"json": {"userId": "someone"}}),  # no function key: the host's 401
    ("GET", "/api/ops/revocations/status", {"headers": {"x-functions-key": "wrong"}}),
    (
        "POST",
        "/api/ops/revocations",
        {"json": {"userId": "x", "action": "explode"}, "headers": {"x-functions-key": FUNCTION_KEY}},
    ),
    ("GET", "/api/nothing", {}),
]


def test_the_app_answers_the_same_through_both_paths(paths):
    users = {mode: f"parity-{mode}-{uuid.uuid4().hex[:8]}" for mode in paths}
    differences = []
    for method, path, options in SESSION:
        answers = {mode: ask(app, method, path, users[mode], **dict(options)) for mode, app in paths.items()}
        if answers["direct"] != answers["runtime"]:
            differences.append((method, path, answers))
    assert differences == []


def test_the_session_covers_success_and_each_kind_of_refusal(paths):
    """The comparison means something only if the session's answers differ from each other."""
    user = f"parity-cover-{uuid.uuid4().hex[:8]}"
    seen = {ask(paths["runtime"], method, path, user, **dict(options))["status"] for method, path, options in SESSION}
    assert {200, 204, 400, 401, 404, 405, 413, 415} <= seen


def test_an_operator_request_with_the_key_is_accepted_by_both(paths):
    body = {"userId": f"ops-{uuid.uuid4().hex[:8]}", "reason": "parity"}
    answers = [
        ask(app, "POST", "/api/ops/revocations", None, json=body, headers={"x-functions-key": FUNCTION_KEY})
        for app in paths.values()
    ]
    assert answers[0] == answers[1] and answers[0]["status"] == 202


def test_the_timer_and_queue_functions_run_through_both(paths):
    for app in paths.values():
        sweep = requests.post(f"{app.url}/admin/functions/revocation_sweep", json={}, timeout=60)
        assert sweep.status_code == 202, app.log_text()[-2000:]
        # A queue message that is not a revocation batch: the function raises, the host answers 500, in both.
        broken = requests.post(f"{app.url}/admin/functions/revocation_batch", json={"input": "not json"}, timeout=60)
        assert broken.status_code == 500
