"""Issue 11, items 2-4, as an attacker would try them: over HTTP against the app served by devhost, with its own issuer.

- Item 2, the issuer while it fails: forged kids made one issuer fetch each (100 forged tokens, 100 fetches), fetches
  ran one after another under a lock (8 forged tokens against a slow issuer: 4, 8 ... 32 s), and signed-in users could
  queue behind them. Now: one fetch per interval whatever its outcome, one shared fetch at a time, known keys answered
  without waiting, the last good keys served while the issuer is down.
- Item 3, merged claim namespaces: ``sub=X`` (no ``oid``) reached the identity of the user whose ``oid`` is X. Now one
  claim (AUTH_USER_CLAIM, default oid); a token without it is 401, and mappings made under the old rule still resolve.
- Item 4, app-only tokens got identities: a client-credentials token for the API's audience was given an ACS
  identity. Now 403 ``user_token_required`` by default; AUTH_REQUIRED_SCOPES gives 403 ``insufficient_scope``.

Fast, in-memory versions of the same rules: tests/shared/adapters/auth/test_key_cache.py and test_token_kind.py.
Figures (fetch counts, a signed-in user's latency during the burst) are printed with -s, never asserted as times.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from tests.support.app_process import AppProcess, post_json
from tests.support.oidc_issuer import OidcIssuer

pytestmark = pytest.mark.integration

AUDIENCE = "api://auth-attacks"
SCOPE = "access_as_user"


@pytest.fixture
def own_issuer() -> Iterator[OidcIssuer]:
    """An issuer for one test that makes it fail, slow down or hang."""
    with OidcIssuer() as running:
        yield running


def start_jwt_app(app_factory: Any, issuer: OidcIssuer, **settings: str) -> AppProcess:
    app: AppProcess = app_factory(
        AUTH_MODE="jwt", AUTH_ISSUER=issuer.issuer, AUTH_AUDIENCE=AUDIENCE, TOKEN_RATE_LIMIT_PER_MINUTE="0", **settings
    )
    return app


@pytest.fixture(scope="module")
def jwt_app(app_factory: Any, issuer: OidcIssuer) -> AppProcess:
    return start_jwt_app(app_factory, issuer)


def user_claims(user: str, **extra: Any) -> dict[str, Any]:
    """A signed-in user's delegated token (Entra ID shape: oid, a pairwise sub that differs, scp); None drops a claim."""
    claims = {"aud": AUDIENCE, "oid": user, "sub": f"pairwise-{user}", "azp": "spa-client", "scp": SCOPE, **extra}
    return {name: value for name, value in claims.items() if value is not None}


def post_token(app: AppProcess, token: str, path: str = "token") -> requests.Response:
    return post_json(app.api(path), None, {"Authorization": f"Bearer {token}"})


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- item 2: the issuer while it fails


def test_100_forged_kids_while_the_issuer_fails_cost_one_fetch(app_factory, own_issuer):
    own_issuer.down = True  # from the start: the app has never had keys
    app = start_jwt_app(app_factory, own_issuer)
    answers = [
        post_token(app, own_issuer.mint(user_claims(fresh("victim")), kid=f"forged-{n}", foreign_key=True)) for n in range(100)
    ]
    for answer in answers:
        assert_error(answer, 503, "unavailable")  # no keys at all: retry later, not "your token is bad"
        assert 1 <= int(answer.headers["Retry-After"]) <= 30  # until the next fetch may start
    print(f"\nissuer requests for 100 forged kids while it fails, no keys held: {own_issuer.requests}")
    assert own_issuer.requests == 1  # before: 100 (one per forged token)


def test_forged_kids_with_good_keys_held_are_401_while_signed_in_users_keep_working(app_factory, own_issuer):
    interval = 2
    app = start_jwt_app(app_factory, own_issuer, AUTH_JWKS_MIN_INTERVAL_SECONDS=str(interval))
    alice = fresh("alice")
    first = post_token(app, own_issuer.mint(user_claims(alice)))
    assert first.status_code == 200, first.text
    after_warm_up = own_issuer.requests
    own_issuer.down = True
    time.sleep(interval + 0.2)  # a whole interval since the last fetch: a forged kid may make the app look once
    started = time.monotonic()
    for n in range(100):
        forged = post_token(app, own_issuer.mint(user_claims(alice), kid=f"forged-{n}", foreign_key=True))
        error = assert_error(forged, 401, "unauthenticated")
        assert "unknown signing key" in error["message"]
        if n % 10 == 0:  # Alice, meanwhile, is served from the last good keys
            refreshed = post_token(app, own_issuer.mint(user_claims(alice)), "token/refresh")
            assert refreshed.status_code == 200, refreshed.text
            assert refreshed.json()["communicationUserId"] == first.json()["communicationUserId"]
    elapsed = time.monotonic() - started
    attempts = own_issuer.requests - after_warm_up
    print(f"\nissuer requests for 100 forged kids while it fails, good keys held: {attempts} in {elapsed:.1f} s")
    assert 1 <= attempts <= 1 + int(elapsed // interval)  # at most one per interval (before: 100)


def test_a_slow_issuer_serves_a_forged_burst_with_one_fetch_and_holds_no_signed_in_user(app_factory, own_issuer):
    app = start_jwt_app(app_factory, own_issuer, AUTH_JWKS_MIN_INTERVAL_SECONDS="1")
    bob = fresh("bob")
    first = post_token(app, own_issuer.mint(user_claims(bob)))
    assert first.status_code == 200, first.text
    after_warm_up = own_issuer.requests
    time.sleep(1.2)  # an interval since the last fetch
    own_issuer.hold()  # the issuer now answers nothing (for up to 10 s): the app's fetch hangs until its own timeout
    try:
        with ThreadPoolExecutor(8) as pool:
            forged = [
                pool.submit(post_token, app, own_issuer.mint(user_claims(bob), kid=f"forged-{n}", foreign_key=True))
                for n in range(8)
            ]
            deadline = time.monotonic() + 10
            while own_issuer.requests == after_warm_up and time.monotonic() < deadline:
                time.sleep(0.01)  # until the burst has started the app's fetch
            latencies = []
            for _ in range(5):  # Bob, meanwhile, with a key the app holds
                sent = time.monotonic()
                response = post_token(app, own_issuer.mint(user_claims(bob)), "token/refresh")
                latencies.append(time.monotonic() - sent)
                assert response.status_code == 200, response.text
            answers = [future.result() for future in forged]
    finally:
        own_issuer.release()
    for answer in answers:
        # Each forged request waited at most 2 s for the shared fetch: 503 while it still runs (401 had it ended).
        assert answer.status_code in (401, 503), answer.text
        assert answer.json()["error"]["code"] in ("unauthenticated", "unavailable")
    print(
        f"\nslow issuer, 8 forged kids at once: {own_issuer.requests - after_warm_up} issuer request(s); "
        f"a signed-in user's refresh meanwhile: {min(latencies) * 1000:.0f}-{max(latencies) * 1000:.0f} ms"
    )
    assert own_issuer.requests - after_warm_up == 1  # one fetch for all of them (before: 8, one after another)


# --------------------------------------------------------------------------- item 3: one claim per key space


def test_a_sub_only_token_cannot_reach_the_identity_of_the_user_whose_oid_it_names(jwt_app, issuer):
    victim = fresh("oid")
    mine = post_token(jwt_app, issuer.mint(user_claims(victim)))
    assert mine.status_code == 200, mine.text
    # Another token of the same issuer whose sub is the victim's oid, and no oid (before: the same ACS identity).
    for path in ("token", "token/refresh"):
        forged = post_token(jwt_app, issuer.mint(user_claims(victim, oid=None, sub=victim)), path)
        assert_error(forged, 401, "unauthenticated")
        assert forged.headers["WWW-Authenticate"] == 'Bearer error="invalid_token", error_description="no oid claim"'
    again = post_token(jwt_app, issuer.mint(user_claims(victim)), "token/refresh")
    assert again.json()["communicationUserId"] == mine.json()["communicationUserId"]


def old_rule_key(issuer: str, user_id: str) -> str:
    """The identity map's key before issue 11, written out here rather than imported: ``["<iss>","<oid or sub>"]``."""
    return json.dumps([issuer, user_id], ensure_ascii=False, separators=(",", ":"))


def store_old_mapping(azurite: Any, emulator: Any, table_name: str, user_key: str) -> str:
    """A mapping as the service stored it before this change (shared/adapters/identity_map.py's row), to a new ACS identity."""
    identities = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path)
    )
    acs_user_id: str = identities.create_user().properties["id"]
    row_key = hashlib.sha256(user_key.encode("utf-8")).hexdigest()
    now = datetime.now(UTC)
    with TableClient.from_connection_string(azurite.connection_string, table_name=table_name) as table:
        try:
            table.create_table()
        except ResourceExistsError:
            pass
        table.create_entity(
            {
                "PartitionKey": row_key[:2],
                "RowKey": row_key,
                "UserKey": user_key,
                "AcsUserId": acs_user_id,
                "CreatedAt": now,
                "LastIssuedAt": now,
            }
        )
    return acs_user_id


def test_a_mapping_made_under_the_old_rule_is_found_under_the_oid_default(jwt_app, issuer, azurite, emulator):
    oid = fresh("oid-before-upgrade")
    acs_user_id = store_old_mapping(azurite, emulator, jwt_app.table_name, old_rule_key(issuer.issuer, oid))
    refreshed = post_token(jwt_app, issuer.mint(user_claims(oid, sub=fresh("some-pairwise-sub"))), "token/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["communicationUserId"] == acs_user_id
    assert emulator.validate(refreshed.json()["token"])["valid"] is True


def test_a_user_keyed_by_sub_before_is_refused_under_oid_not_given_another_identity(jwt_app, issuer, azurite, emulator):
    sub = fresh("sub-only-user")
    acs_user_id = store_old_mapping(azurite, emulator, jwt_app.table_name, old_rule_key(issuer.issuer, sub))
    for path in ("token/refresh", "token"):  # "token" would create an identity if the token were accepted
        assert_error(post_token(jwt_app, issuer.mint(user_claims(sub, oid=None, sub=sub)), path), 401, "unauthenticated")
    with TableClient.from_connection_string(azurite.connection_string, table_name=jwt_app.table_name) as table:
        rows = [row for row in table.list_entities() if row["UserKey"] == old_rule_key(issuer.issuer, sub)]
    assert [row["AcsUserId"] for row in rows] == [acs_user_id]  # untouched, and no second row


def test_with_the_sub_claim_a_deployment_keyed_by_sub_keeps_its_mappings(app_factory, issuer, azurite, emulator):
    app = start_jwt_app(app_factory, issuer, AUTH_USER_CLAIM="sub")
    sub = fresh("auth0|user")
    acs_user_id = store_old_mapping(azurite, emulator, app.table_name, old_rule_key(issuer.issuer, sub))
    plain = {"aud": AUDIENCE, "sub": sub, "scope": "openid profile"}  # Auth0/Google shape: no oid
    refreshed = post_token(app, issuer.mint(plain), "token/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["communicationUserId"] == acs_user_id
    # The oid is no key in this deployment: a token naming the same value only as its oid is refused.
    assert_error(
        post_token(app, issuer.mint({"aud": AUDIENCE, "oid": sub, "scope": "x"}), "token/refresh"), 401, "unauthenticated"
    )


# --------------------------------------------------------------------------- item 4: users' delegated tokens only


def entra_app_token_claims(service_principal: str, **extra: Any) -> dict[str, Any]:
    """An Entra ID client-credentials token: oid and sub are the service principal's, roles and no scp."""
    return {
        "aud": AUDIENCE,
        "oid": service_principal,
        "sub": service_principal,
        "azp": "daemon",
        "roles": ["Tokens.Issue"],
        **extra,
    }


def assert_no_mapping(azurite: Any, table_name: str, user_key: str) -> None:
    row_key = hashlib.sha256(user_key.encode("utf-8")).hexdigest()
    with TableClient.from_connection_string(azurite.connection_string, table_name=table_name) as table:
        try:
            table.get_entity(row_key[:2], row_key)
        except ResourceNotFoundError:
            return
    raise AssertionError(f"an identity mapping exists for {user_key}")


def test_a_client_credentials_token_gets_no_identity(jwt_app, issuer, azurite):
    service_principal = fresh("sp")
    for claims in (
        entra_app_token_claims(service_principal),  # oid == sub
        entra_app_token_claims(service_principal, sub=fresh("s"), idtyp="app"),  # Entra's idtyp optional claim
        {**entra_app_token_claims(service_principal, sub=fresh("s")), "scp": None},  # roles, no scp
    ):
        token = issuer.mint({name: value for name, value in claims.items() if value is not None})
        error = assert_error(post_token(jwt_app, token), 403, "user_token_required")
        assert "application's own token" in error["message"]
    app_token = issuer.mint(entra_app_token_claims(service_principal))
    for path in ("token/refresh", "token/revoke"):  # every route asks who the caller is the same way
        assert_error(post_token(jwt_app, app_token, path), 403, "user_token_required")
    deleted = requests.delete(jwt_app.api("identity"), headers={"Authorization": f"Bearer {app_token}"}, timeout=30)
    assert_error(deleted, 403, "user_token_required")
    assert_no_mapping(azurite, jwt_app.table_name, old_rule_key(issuer.issuer, service_principal))
    assert post_token(jwt_app, issuer.mint(user_claims(fresh("user")))).status_code == 200  # users are unaffected


def test_an_auth0_machine_token_gets_no_identity_under_the_sub_claim(app_factory, issuer, azurite):
    app = start_jwt_app(app_factory, issuer, AUTH_USER_CLAIM="sub")
    client = fresh("m2m")
    claims = {"aud": AUDIENCE, "sub": f"{client}@clients", "azp": client, "gty": "client-credentials", "scope": "tokens"}
    assert_error(post_token(app, issuer.mint(claims)), 403, "user_token_required")
    assert_no_mapping(azurite, app.table_name, old_rule_key(issuer.issuer, f"{client}@clients"))


def test_required_scopes_and_roles_refuse_with_403_and_an_app_role_is_no_way_in(app_factory, issuer):
    app = start_jwt_app(app_factory, issuer, AUTH_REQUIRED_SCOPES=SCOPE, AUTH_REQUIRED_ROLES="Tokens.Issue")
    agent = fresh("agent")
    no_scope = post_token(app, issuer.mint(user_claims(agent, scp="User.Read", roles=["Tokens.Issue"])))
    assert SCOPE in assert_error(no_scope, 403, "insufficient_scope")["message"]
    assert no_scope.headers["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{SCOPE}"'  # RFC 6750 3.1
    assert_error(post_token(app, issuer.mint(user_claims(agent, roles=["Viewer"]))), 403, "forbidden")
    # An application holding the required role as an application permission is still not a user.
    assert_error(post_token(app, issuer.mint(entra_app_token_claims(fresh("sp")))), 403, "user_token_required")
    allowed = post_token(app, issuer.mint(user_claims(agent, scp=f"User.Read {SCOPE}", roles=["Tokens.Issue"])))
    assert allowed.status_code == 200, allowed.text
