"""Security checks over real HTTP that tests/api and tests/auth do not already make.

Already covered elsewhere (not repeated): an identity id in the refresh body is refused and in its
query ignored, Mallory's calls leave Alice's token valid (tests/api/test_token_flow.py); forged Easy
Auth / dev headers alone in jwt mode, expired / wrong-audience / wrong-issuer / wrong-signature
tokens over HTTP (tests/api/test_auth_modes.py); ``alg: none`` and HS256-with-the-public-key in the
authenticator (tests/auth/test_jwt_bearer.py); a 17 KiB body on POST /api/token (tests/api/test_bad_input.py);
one token and the access key absent from the log (tests/api/test_token_flow.py).

Added here: isolation between two users who both have identities (revoke, refresh, ids named in any
body or query of any route), a bearer token plus forged Easy Auth headers, ``alg: none`` and HS/RS
confusion over HTTP, 413 on every route, deeply nested JSON over HTTP, and a scan of the app's whole
log after a session for every token issued, the caller's bearer tokens, the Teams token, the ACS
access key and both connection strings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration

AUDIENCE = "api://robustness-security"
REVOKED_OK = (202, 204)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


@pytest.fixture(scope="module")
def dev_app(app_factory):
    return app_factory(TOKEN_RATE_LIMIT_PER_MINUTE="0")


@pytest.fixture(scope="module")
def jwt_app(app_factory, issuer):
    return app_factory(AUTH_MODE="jwt", AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=AUDIENCE, TOKEN_RATE_LIMIT_PER_MINUTE="0")


def claims(oid: str, **extra) -> dict:
    now = int(time.time())
    return {"aud": AUDIENCE, "oid": oid, "sub": f"sub-{oid}", "iat": now, "nbf": now, "exp": now + 600, **extra}


# --------------------------------------------------------------------------- user isolation


def test_a_revoke_by_one_user_leaves_another_users_tokens_valid(dev_app, emulator):
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    a = post_json(dev_app.api("token"), None, as_user(alice)).json()
    b = post_json(dev_app.api("token"), None, as_user(bob)).json()
    assert a["communicationUserId"] != b["communicationUserId"]

    # Alice signs out everywhere, naming Bob's identity in the query and the body for good measure.
    revoke = requests.post(
        dev_app.api(f"token/revoke?communicationUserId={b['communicationUserId']}&userId={bob}"),
        json={"communicationUserId": b["communicationUserId"]},
        headers=as_user(alice),
        timeout=30,
    )
    assert revoke.status_code in REVOKED_OK or revoke.json()["error"]["code"] == "unknown_field", revoke.text
    if revoke.status_code not in REVOKED_OK:  # the body was refused: revoke again without it
        assert requests.post(dev_app.api("token/revoke"), headers=as_user(alice), timeout=30).status_code in REVOKED_OK

    assert emulator.validate(a["token"])["valid"] is False
    assert emulator.validate(b["token"])["valid"] is True
    again = post_json(dev_app.api("token/refresh"), None, as_user(bob)).json()
    assert again["communicationUserId"] == b["communicationUserId"]
    assert emulator.validate(again["token"])["valid"] is True


def test_delete_naming_another_identity_deletes_only_the_callers(dev_app, emulator):
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    a = post_json(dev_app.api("token"), None, as_user(alice)).json()
    b = post_json(dev_app.api("token"), None, as_user(bob)).json()
    deleted = requests.delete(
        dev_app.api(f"identity?communicationUserId={b['communicationUserId']}"), headers=as_user(alice), timeout=30
    )
    assert deleted.status_code in REVOKED_OK
    assert post_json(dev_app.api("token/refresh"), None, as_user(alice)).status_code == 404
    refreshed = post_json(dev_app.api("token/refresh"), None, as_user(bob))
    assert refreshed.status_code == 200 and refreshed.json()["communicationUserId"] == b["communicationUserId"]
    assert emulator.validate(b["token"])["valid"] is True
    assert emulator.validate(a["token"])["valid"] is False


def test_concurrent_refreshes_never_return_another_users_identity(dev_app):
    users = [f"iso-{n}-{uuid.uuid4().hex[:6]}" for n in range(8)]
    ids = {user: post_json(dev_app.api("token"), None, as_user(user)).json()["communicationUserId"] for user in users}
    assert len(set(ids.values())) == len(users)

    def refresh(user: str) -> tuple[str, str]:
        path = f"token/refresh?communicationUserId={ids[users[0]]}"  # everyone names the first user's id in the query
        return user, post_json(dev_app.api(path), None, as_user(user)).json()["communicationUserId"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(refresh, users * 4))
    assert all(got == ids[user] for user, got in answers)


@pytest.mark.parametrize("path", ["token", "token/refresh"])
@pytest.mark.parametrize("field", ["communicationUserId", "userId", "user", "identity", "oid"])
def test_identity_fields_in_token_bodies_are_refused(dev_app, path, field):
    assert_error(post_json(dev_app.api(path), {field: "8:acs:someone-else"}, as_user("body-field-user")), 400, "unknown_field")


def test_teams_body_cannot_name_a_user(dev_app):
    body = {"teamsToken": "x", "clientId": str(uuid.uuid4()), "userObjectId": str(uuid.uuid4()), "communicationUserId": "8:acs:x"}
    assert_error(post_json(dev_app.api("token/teams"), body, as_user("teams-field-user")), 400, "unknown_field")


# --------------------------------------------------------------------------- jwt mode


def test_bearer_identity_wins_over_forged_easy_auth_headers(jwt_app, issuer):
    alice = post_json(jwt_app.api("token"), None, bearer(issuer.mint(claims("oid-sec-alice")))).json()
    forged = {"X-MS-CLIENT-PRINCIPAL-ID": "oid-sec-alice", "X-MS-CLIENT-PRINCIPAL-IDP": "aad", "X-Dev-User": "oid-sec-alice"}
    bob = post_json(jwt_app.api("token"), None, {**forged, **bearer(issuer.mint(claims("oid-sec-bob")))})
    assert bob.status_code == 200
    assert bob.json()["communicationUserId"] != alice["communicationUserId"]
    bob_again = post_json(jwt_app.api("token/refresh"), None, bearer(issuer.mint(claims("oid-sec-bob"))))
    assert bob_again.json()["communicationUserId"] == bob.json()["communicationUserId"]


def test_alg_none_and_hs256_keyed_with_the_public_key_are_401_over_http(jwt_app, issuer):
    body = b64(json.dumps({**claims("oid-sec-alice"), "iss": issuer.issuer}).encode())
    unsigned = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": issuer.current_kid}).encode()) + f".{body}."
    public_pem = (
        issuer.keys[issuer.current_kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.current_kid}).encode())
    confused = f"{head}.{body}." + b64(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    jwk_secret = json.dumps(
        json.loads(__import__("jwt").algorithms.RSAAlgorithm.to_jwk(issuer.keys[issuer.current_kid].public_key()))
    )
    confused_jwk = f"{head}.{body}." + b64(hmac.new(jwk_secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    for token in (unsigned, unsigned + "x", confused, confused_jwk):
        response = post_json(jwt_app.api("token"), None, bearer(token))
        assert_error(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_token_not_yet_valid_is_401(jwt_app, issuer):
    future = int(time.time()) + 3600
    response = post_json(jwt_app.api("token"), None, bearer(issuer.mint(claims("oid-sec-future", nbf=future, iat=future))))
    assert_error(response, 401, "unauthenticated")


# --------------------------------------------------------------------------- hostile bodies


@pytest.mark.parametrize(
    "method, path",
    [("POST", "token"), ("POST", "token/refresh"), ("POST", "token/revoke"), ("POST", "token/teams"), ("DELETE", "identity")],
)
def test_oversized_body_is_413_on_every_route(dev_app, method, path):
    big = b'{"pad": "' + b"x" * (16 * 1024) + b'"}'
    response = requests.request(
        method, dev_app.api(path), data=big, headers={**as_user("big-body-user"), "Content-Type": "application/json"}, timeout=30
    )
    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize("path", ["token", "token/refresh", "token/teams"])
@pytest.mark.parametrize("depth", [1000, 8000])
def test_deeply_nested_json_is_400_over_http(dev_app, path, depth):
    for body in (b"[" * depth + b"]" * depth, b'{"scopes": ' + b"[" * depth + b"]" * depth + b"}"):
        response = requests.post(
            dev_app.api(path), data=body, headers={**as_user("nested-user"), "Content-Type": "application/json"}, timeout=30
        )
        assert_error(response, 400, "invalid_json")


# --------------------------------------------------------------------------- secrets in logs


def test_the_whole_log_of_a_session_holds_no_token_or_secret(app_factory, issuer, emulator, azurite):
    """Run a session of every kind of request in dev and jwt mode, then scan each app's complete log."""
    dev = app_factory(TOKEN_RATE_LIMIT_PER_MINUTE="2")  # low: the session also hits the rate limit
    jwt_mode = app_factory(AUTH_MODE="jwt", AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=AUDIENCE)
    secrets = [emulator.access_key, emulator.connection_string, azurite.connection_string]
    teams_token = "teams-" + uuid.uuid4().hex
    tokens: list[str] = []

    for n in range(3):
        user = f"log-user-{n}"
        for path in ("token", "token/refresh", "token", "token/refresh"):  # the last ones are rate limited
            response = post_json(dev.api(path), {"scopes": ["voip"]}, as_user(user))
            if response.status_code == 200:
                tokens.append(response.json()["token"])
        post_json(
            dev.api("token/teams"),
            {"teamsToken": teams_token, "clientId": str(uuid.uuid4()), "userObjectId": str(uuid.uuid4())},
            as_user(f"log-teams-{n}"),
        )
        post_json(dev.api("token/revoke"), None, as_user(user))
        requests.delete(dev.api("identity"), headers=as_user(user), timeout=30)
        bearer_token = issuer.mint(claims(f"oid-log-{n}"))
        secrets.append(bearer_token)
        response = post_json(jwt_mode.api("token"), None, bearer(bearer_token))
        assert response.status_code == 200
        tokens.append(response.json()["token"])
        expired = issuer.mint(claims(f"oid-log-{n}", exp=int(time.time()) - 3600))
        secrets.append(expired)
        assert post_json(jwt_mode.api("token"), None, bearer(expired)).status_code == 401
    assert len(tokens) >= 6

    for app in (dev, jwt_mode):
        app.stop()
    time.sleep(0.3)  # let the stderr readers reach the end of the pipes
    log = dev.log_text() + jwt_mode.log_text()
    assert "function=issue_token" in log and "status=429" in log and "status=401" in log
    for token in tokens:
        assert token not in log
        assert token.rsplit(".", 1)[-1] not in log  # not even the signature
        assert token.split(".")[1][:40] not in log  # nor the payload
    for secret in secrets:
        assert secret not in log
    assert teams_token not in log
    for n in range(3):
        assert f"log-user-{n}" not in log  # users appear hashed
