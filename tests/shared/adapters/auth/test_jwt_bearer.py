"""JWT bearer validation against a local OIDC issuer: keys, caching, rotation, forged tokens, whose token it is."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.adapters.auth import create_authenticator
from shared.domain.errors import ForbiddenError, UnauthenticatedError, UnavailableError
from shared.settings import load_auth_settings
from tests.support.oidc_issuer import OidcIssuer

pytestmark = pytest.mark.integration

AUDIENCE = "api://tests"


@pytest.fixture
def issuer():
    with OidcIssuer() as running:
        yield running


def authenticator(issuer, **extra):
    env = {"AUTH_MODE": "jwt", "AUTH_ISSUER": issuer.issuer, "AUTH_AUDIENCE": AUDIENCE, **extra}
    return create_authenticator(load_auth_settings(env))


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def user(oid="o-1", **extra):
    """A user's delegated token's claims (Entra ID shape: oid, a pairwise sub that differs, scp); None drops a claim."""
    claims = {"aud": AUDIENCE, "oid": oid, "sub": f"pairwise-{oid}", "scp": "access_as_user", **extra}
    return {name: value for name, value in claims.items() if value is not None}


async def test_valid_token_caller_and_roles(issuer):
    auth = authenticator(issuer)
    caller = await auth.authenticate(
        bearer(issuer.mint({"aud": AUDIENCE, "oid": "o-1", "sub": "s-1", "scp": "x", "roles": ["A"], "groups": ["g"]}))
    )
    assert (caller.provider, caller.user_id, caller.roles) == (issuer.issuer, "o-1", frozenset({"A", "g"}))
    await auth.close()


async def test_keys_are_cached(issuer):
    auth = authenticator(issuer)
    for n in range(5):
        caller = await auth.authenticate(bearer(issuer.mint(user(f"o-{n}"))))
        assert caller.user_id == f"o-{n}"
    assert issuer.jwks_fetches == 1 and issuer.discovery_fetches == 1
    await auth.close()


async def test_explicit_jwks_url_skips_discovery(issuer):
    auth = authenticator(issuer, AUTH_JWKS_URL=issuer.jwks_url)
    await auth.authenticate(bearer(issuer.mint(user())))
    assert issuer.discovery_fetches == 0 and issuer.jwks_fetches == 1
    await auth.close()


async def test_rotated_key_is_fetched_once_then_forged_kids_do_not_hammer_the_issuer(issuer):
    auth = authenticator(issuer, AUTH_JWKS_MIN_INTERVAL_SECONDS="1")
    await auth.authenticate(bearer(issuer.mint(user())))
    await asyncio.sleep(1.1)  # one interval: an unknown kid may make the cache look again
    issuer.rotate()
    caller = await auth.authenticate(bearer(issuer.mint(user("rotated"))))
    assert caller.user_id == "rotated" and issuer.jwks_fetches == 2
    for n in range(10):
        with pytest.raises(UnauthenticatedError):
            await auth.authenticate(bearer(issuer.mint(user(), kid=f"forged-{n}", foreign_key=True)))
    assert issuer.jwks_fetches == 2
    await auth.close()


async def test_a_failing_issuer_is_asked_once_per_interval_and_recovers(issuer):
    """Issue 11, item 2: the failure is cached like a success (before: one fetch per forged token)."""
    auth = authenticator(issuer, AUTH_JWKS_MIN_INTERVAL_SECONDS="1")
    issuer.down = True
    for n in range(20):
        with pytest.raises(UnavailableError) as caught:
            await auth.authenticate(bearer(issuer.mint(user(), kid=f"forged-{n}")))
        assert caught.value.retry_after == 1  # the interval (1 s) from the one failed attempt
    assert issuer.requests == 1  # one attempt (its discovery request failed)
    issuer.down = False
    await asyncio.sleep(1.1)
    assert (await auth.authenticate(bearer(issuer.mint(user())))).user_id == "o-1"
    assert issuer.requests == 3  # the next attempt: discovery and JWKS
    await auth.close()


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"exp": int(time.time()) - 120}, "token expired"),
        ({"nbf": int(time.time()) + 600}, "token not yet valid"),
        ({"aud": "api://other"}, "wrong audience"),
        ({"iss": "https://evil.example.com"}, "wrong issuer"),
        ({"exp": None}, "signature or claims rejected"),
    ],
)
async def test_bad_claims(issuer, claims, reason):
    auth = authenticator(issuer)
    body = {**user(), **claims}
    token = issuer.mint({k: v for k, v in body.items() if v is not None})
    if claims.get("exp", 0) is None:
        token = jwt.encode(
            {k: v for k, v in {**body, "iss": issuer.issuer}.items() if v is not None},
            issuer.keys["key-1"],
            algorithm="RS256",
            headers={"kid": "key-1"},
        )
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(bearer(token))
    assert caught.value.www_authenticate == f'Bearer error="invalid_token", error_description="{reason}"'
    await auth.close()


async def test_expiry_within_leeway_is_accepted(issuer):
    auth = authenticator(issuer)
    await auth.authenticate(bearer(issuer.mint(user(exp=int(time.time()) - 30))))
    await auth.close()


async def test_alg_none_and_hs256_with_the_public_key_are_rejected(issuer):
    auth = authenticator(issuer)
    await auth.authenticate(bearer(issuer.mint(user("warm-up"))))
    claims = {"aud": AUDIENCE, "sub": "x", "iss": issuer.issuer, "exp": int(time.time()) + 600}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "key-1"})
    public_pem = (
        issuer.keys["key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    # An HS256 token keyed with the public key, built by hand (PyJWT refuses PEM secrets).
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    body = b64(json.dumps(claims).encode())
    confused = f"{head}.{body}." + b64(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    for token in (unsigned, confused):
        with pytest.raises(UnauthenticatedError) as caught:
            await auth.authenticate(bearer(token))
        assert "algorithm not allowed" in caught.value.www_authenticate
    await auth.close()


async def test_an_ec_algorithm_naming_an_rsa_key_is_401_not_a_crash(issuer):
    """Found by the hypothesis test: PyJWT raises TypeError when the key's kind does not fit the alg."""
    from cryptography.hazmat.primitives.asymmetric import ec

    auth = authenticator(issuer)
    claims = {"aud": AUDIENCE, "sub": "x", "iss": issuer.issuer, "exp": int(time.time()) + 600}
    token = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "key-1"})
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(bearer(token))
    assert "does not fit the algorithm" in caught.value.www_authenticate
    await auth.close()


async def test_wrong_signature(issuer):
    auth = authenticator(issuer)
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(bearer(issuer.mint(user(), foreign_key=True)))
    assert "signature" in caught.value.www_authenticate
    await auth.close()


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer "}, {"Authorization": "Bearer a.b"}]
)
async def test_missing_or_malformed_header(issuer, headers):
    auth = authenticator(issuer)
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(headers)
    assert caught.value.www_authenticate.startswith("Bearer")
    await auth.close()


async def test_forged_easy_auth_headers_are_ignored(issuer):
    auth = authenticator(issuer)
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate({"X-MS-CLIENT-PRINCIPAL-ID": "victim", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"})
    await auth.close()


async def test_issuer_down_is_unavailable(issuer):
    auth = authenticator(issuer)
    issuer.down = True
    with pytest.raises(UnavailableError) as caught:
        await auth.authenticate(bearer(issuer.mint(user())))
    assert caught.value.retry_after >= 1
    await auth.close()


async def test_required_roles(issuer):
    auth = authenticator(issuer, AUTH_REQUIRED_ROLES="Agents,Admins")
    with pytest.raises(ForbiddenError):
        await auth.authenticate(bearer(issuer.mint(user("x", roles=["Viewer"]))))
    caller = await auth.authenticate(bearer(issuer.mint(user("y", groups=["Admins"]))))
    assert caller.user_id == "y"
    await auth.close()


# --------------------------------------------------------------------------- issue 11, item 3: one claim per key space


async def test_the_user_is_the_oid_and_a_token_without_one_is_refused(issuer):
    auth = authenticator(issuer)
    assert (await auth.authenticate(bearer(issuer.mint(user("o-7"))))).user_id == "o-7"
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(bearer(issuer.mint({"aud": AUDIENCE, "sub": "o-7"})))  # not keyed by its sub instead
    assert caught.value.www_authenticate == 'Bearer error="invalid_token", error_description="no oid claim"'
    await auth.close()


async def test_with_the_sub_claim_the_oid_is_ignored(issuer):
    auth = authenticator(issuer, AUTH_USER_CLAIM="sub")
    assert (await auth.authenticate(bearer(issuer.mint({"aud": AUDIENCE, "sub": "s-1"})))).user_id == "s-1"
    assert (await auth.authenticate(bearer(issuer.mint(user("o-1"))))).user_id == "pairwise-o-1"
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(bearer(issuer.mint({"aud": AUDIENCE, "oid": "o-1"})))
    assert "no sub claim" in caught.value.www_authenticate
    await auth.close()


# --------------------------------------------------------------------------- issue 11, item 4: users' delegated tokens only

ENTRA_APP_TOKEN = {"aud": AUDIENCE, "oid": "sp-1", "sub": "sp-1", "azp": "daemon-client", "roles": ["Agents"]}


async def test_an_application_token_is_refused_by_default_even_with_a_required_role(issuer):
    auth = authenticator(issuer, AUTH_REQUIRED_ROLES="Agents")
    for claims in (ENTRA_APP_TOKEN, {**user(), "idtyp": "app"}):
        with pytest.raises(ForbiddenError) as caught:
            await auth.authenticate(bearer(issuer.mint(claims)))
        assert caught.value.code == "user_token_required"
    await auth.close()


async def test_application_tokens_can_be_allowed(issuer):
    auth = authenticator(issuer, AUTH_ALLOW_APP_TOKENS="true")
    assert (await auth.authenticate(bearer(issuer.mint(ENTRA_APP_TOKEN)))).user_id == "sp-1"
    await auth.close()


async def test_required_scopes_from_scp_or_scope(issuer):
    auth = authenticator(issuer, AUTH_REQUIRED_SCOPES="access_as_user")
    assert (await auth.authenticate(bearer(issuer.mint(user("a", scp="User.Read access_as_user"))))).user_id == "a"
    assert (await auth.authenticate(bearer(issuer.mint(user("b", scp=None, scope="access_as_user"))))).user_id == "b"
    for scopes in ({"scp": "User.Read"}, {"scp": None}):
        with pytest.raises(ForbiddenError) as caught:
            await auth.authenticate(bearer(issuer.mint(user("c", **scopes))))
        assert caught.value.code == "insufficient_scope" and "access_as_user" in caught.value.message
    await auth.close()


def test_plain_http_issuer_only_on_loopback():
    from shared.domain.errors import SettingsError

    with pytest.raises(SettingsError) as caught:
        load_auth_settings({"AUTH_MODE": "jwt", "AUTH_ISSUER": "http://login.example.com", "AUTH_AUDIENCE": "a"})
    assert caught.value.setting == "AUTH_ISSUER"
