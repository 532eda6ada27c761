"""Each AUTH_MODE over real HTTP: valid, expired, wrong audience, wrong signature, missing, forged."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from tests.support.app_process import post_json

pytestmark = pytest.mark.integration

AUDIENCE = "api://acs-token-service-tests"


@pytest.fixture(scope="module")
def jwt_app(app_factory, issuer):
    return app_factory(AUTH_MODE="jwt", AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=AUDIENCE)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**overrides):
    now = int(time.time())
    base = {"aud": AUDIENCE, "oid": "oid-alice", "sub": "sub-alice", "iat": now, "nbf": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def assert_401(response: requests.Response, *, www: str | None = "Bearer") -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthenticated"
    if www:
        assert response.headers["WWW-Authenticate"].startswith(www)


def test_jwt_valid_token_gets_a_token_for_its_oid(jwt_app, issuer):
    first = post_json(jwt_app.api("token"), None, bearer(issuer.mint(claims())))
    assert first.status_code == 200, first.text
    # Another token for the same oid (different sub) maps to the same ACS identity.
    second = post_json(jwt_app.api("token/refresh"), None, bearer(issuer.mint(claims(sub="other-sub"))))
    assert second.status_code == 200
    assert second.json()["communicationUserId"] == first.json()["communicationUserId"]


def test_jwt_a_token_without_oid_is_refused_not_keyed_by_its_sub(jwt_app, issuer):
    """AUTH_USER_CLAIM=oid (the default): one claim per key space (issue 11, item 3; tests/app/test_auth_attacks.py)."""
    response = post_json(jwt_app.api("token"), None, bearer(issuer.mint(claims(oid=None, sub="sub-only-1"))))
    assert_401(response, www='Bearer error="invalid_token", error_description="no oid claim"')


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200},
        {"aud": "api://someone-else"},
        {"iss": "https://evil.example.com"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer"],
)
def test_jwt_rejects_bad_claims(jwt_app, issuer, bad):
    response = post_json(jwt_app.api("token"), None, bearer(issuer.mint(claims(**bad))))
    assert_401(response, www='Bearer error="invalid_token"')


def test_jwt_rejects_a_wrong_signature(jwt_app, issuer):
    token = issuer.mint(claims())
    header, _payload, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims(oid="oid-victim")).encode()).rstrip(b"=").decode()
    assert_401(
        post_json(jwt_app.api("token"), None, bearer(f"{header}.{forged_payload}.{signature}")),
        www='Bearer error="invalid_token"',
    )
    assert_401(
        post_json(jwt_app.api("token"), None, bearer(issuer.mint(claims(), foreign_key=True))), www='Bearer error="invalid_token"'
    )


def test_jwt_missing_or_malformed_credentials(jwt_app):
    assert_401(post_json(jwt_app.api("token"), None, {}), www="Bearer")
    assert_401(post_json(jwt_app.api("token"), None, {"Authorization": "Basic YWxpY2U6cHc="}), www="Bearer")
    assert_401(post_json(jwt_app.api("token"), None, bearer("not.a.jwt")), www='Bearer error="invalid_token"')


def test_jwt_mode_ignores_forged_easy_auth_and_dev_headers(jwt_app):
    forged = {"X-MS-CLIENT-PRINCIPAL-ID": "oid-alice", "X-MS-CLIENT-PRINCIPAL-IDP": "aad", "X-Dev-User": "oid-alice"}
    assert_401(post_json(jwt_app.api("token"), None, forged), www="Bearer")


@pytest.fixture(scope="module")
def easyauth_app(app_factory):
    return app_factory(AUTH_MODE="easyauth")


def principal(user_id: str, roles=()) -> str:
    doc = {
        "auth_typ": "aad",
        "name_typ": "name",
        "role_typ": "roles",
        "claims": [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": user_id}]
        + [{"typ": "roles", "val": role} for role in roles],
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_easyauth_valid_principal(easyauth_app):
    headers = {
        "x-ms-client-principal-id": "ea-user-1",
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
        "X-MS-CLIENT-PRINCIPAL": principal("ea-user-1"),
    }
    first = post_json(easyauth_app.api("token"), None, headers)
    assert first.status_code == 200, first.text
    again = post_json(
        easyauth_app.api("token/refresh"), None, {"X-MS-CLIENT-PRINCIPAL-ID": "ea-user-1", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}
    )
    assert again.json()["communicationUserId"] == first.json()["communicationUserId"]


def test_easyauth_missing_or_inconsistent_principal(easyauth_app):
    assert_401(post_json(easyauth_app.api("token"), None, {}), www=None)
    mismatch = {
        "X-MS-CLIENT-PRINCIPAL-ID": "ea-user-2",
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
        "X-MS-CLIENT-PRINCIPAL": principal("someone-else"),
    }
    assert_401(post_json(easyauth_app.api("token"), None, mismatch), www=None)
    garbage = {
        "X-MS-CLIENT-PRINCIPAL-ID": "ea-user-2",
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
        "X-MS-CLIENT-PRINCIPAL": "%%%not-base64",
    }
    assert_401(post_json(easyauth_app.api("token"), None, garbage), www=None)


def test_required_roles_are_enforced(app_factory):
    app = app_factory(AUTH_MODE="easyauth", AUTH_REQUIRED_ROLES="CallAgent")
    base = {"X-MS-CLIENT-PRINCIPAL-ID": "ea-user-3", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}
    refused = post_json(app.api("token"), None, {**base, "X-MS-CLIENT-PRINCIPAL": principal("ea-user-3", roles=["Viewer"])})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    allowed = post_json(app.api("token"), None, {**base, "X-MS-CLIENT-PRINCIPAL": principal("ea-user-3", roles=["CallAgent"])})
    assert allowed.status_code == 200


def test_dev_mode_needs_the_header(dev_app):
    assert_401(post_json(dev_app.api("token"), None, {}), www=None)
    assert post_json(dev_app.api("token"), None, {"X-Dev-User": "dev-user-1"}).status_code == 200
