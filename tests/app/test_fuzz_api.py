"""Fuzz the HTTP API from docs/openapi.yaml (schemathesis) against the app over real HTTP.

Every operation gets schema-valid and schema-violating requests (bounded: 30 examples per operation
and mode), as a signed-in dev user, as nobody, or with a malformed identity. Whatever comes in: no
5xx, every error is ``{"error": {"code", "message"}}`` as ``application/json``, nothing secret in an
error answer, and the answers conform to the documented status codes, content types and schemas.

Driven with ``case.call()`` in plain Hypothesis tests rather than schemathesis' pytest plugin, so the
app can come from the session's fixtures.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

from tests.support.properties import HYPOTHESIS_COMMON

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
JWT_LIKE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
EXAMPLES = 30

#: Who sends the request: a user with an ACS identity, a new one, nobody, or a header the dev
#: authenticator must refuse.
KNOWN_USERS = [f"fuzz-known-{n}" for n in range(3)]
WHO = st.sampled_from([*KNOWN_USERS, "new", "new", "nobody", "too-long", "blank"])


@pytest.fixture(scope="module")
def fuzz_app(app_factory):
    """The app in dev auth mode with the per-user limit off (fuzzing is one burst of requests)."""
    return app_factory(TOKEN_RATE_LIMIT_PER_MINUTE="0")


@pytest.fixture(autouse=True)
def known_users_have_identities(fuzz_app) -> None:
    """Give the 'known' users an ACS identity before each operation is fuzzed (a fuzzed DELETE may remove it)."""
    for user in KNOWN_USERS:
        assert requests.post(fuzz_app.api("token"), headers={"X-Dev-User": user}, timeout=30).status_code == 200


def identity_headers(who: str) -> dict[str, str]:
    if who in KNOWN_USERS:
        return {"X-Dev-User": who}
    if who == "new":
        return {"X-Dev-User": f"fuzz-{uuid.uuid4().hex[:10]}"}
    if who == "too-long":
        return {"X-Dev-User": "u" * 200}
    if who == "blank":
        return {"X-Dev-User": ""}
    return {}


def content_type(response) -> str:
    """Content-Type of a schemathesis response (headers are lower-case names to lists of values)."""
    return (response.headers.get("content-type") or [""])[0]


def assert_safe_answer(response, secrets: list[str]) -> None:
    """The contract every answer keeps, whatever the request was."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert content_type(response).startswith("application/json"), response.headers
        body = response.json()
        error = body["error"]
        assert isinstance(error["code"], str) and re.fullmatch(r"[a-z_]+", error["code"]), body
        assert isinstance(error["message"], str) and error["message"], body
        assert not JWT_LIKE.search(response.text), response.text
        for secret in secrets:
            assert secret not in response.text


#: (operation, mode) pairs; GET /health has no parameters, body or security, so nothing to violate.
CASES = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (label == "GET /health" and mode is GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize("label, mode", CASES)
def test_fuzzed_requests_get_safe_documented_answers(fuzz_app, emulator, label, mode):
    operation = OPERATIONS[label]
    base_url = fuzz_app.api("")
    secrets = [emulator.access_key, emulator.connection_string]
    session = requests.Session()
    seen: set[int] = set()

    @settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck), **HYPOTHESIS_COMMON)
    @given(case=operation.as_strategy(mode), who=WHO)
    def check(case, who: str) -> None:
        headers = identity_headers(who)
        response = case.call(base_url=base_url.rstrip("/"), session=session, headers=headers, timeout=30)
        seen.add(response.status_code)
        assert_safe_answer(response, secrets)
        case.validate_response(
            response,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
            headers=headers,
        )

    check()
    session.close()
    assert seen and max(seen) < 500


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_every_undocumented_method_is_a_json_405(fuzz_app, label):
    operation = OPERATIONS[label]
    path = operation.path.lstrip("/")
    for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - {operation.method.upper()}:
        response = requests.request(method, fuzz_app.api(path), headers={"X-Dev-User": "fuzz-methods"}, timeout=30)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"] == operation.method.upper()
