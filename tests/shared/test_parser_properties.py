"""Property tests: whatever a caller sends, the parsers raise only the domain errors of shared/errors.py.

Covers the Easy Auth principal parser, JWT bearer handling (against the local OIDC test issuer,
with well-signed tokens carrying arbitrary claims and with arbitrary garbage), the request body
reader and the token request policy. A domain error maps to a 4xx; anything else would be a 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
import string
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.auth import create_authenticator
from shared.adapters.auth.easyauth import EasyAuthAuthenticator
from shared.domain.errors import ForbiddenError, InvalidRequestError, ServiceError, UnauthenticatedError
from shared.domain.policy import ACS_SCOPES, TokenRequest, parse_token_request
from shared.functions.bodies import MAX_BODY_BYTES, read_json_object
from shared.functions.http import RequestRejected, error_response
from shared.settings import load_auth_settings, load_token_policy
from tests.support.oidc_issuer import OidcIssuer
from tests.support.properties import HYPOTHESIS_COMMON

PROPERTY = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], **HYPOTHESIS_COMMON)
AUDIENCE = "api://robustness"

#: Any JSON document, nested a few levels.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
#: Header values as an HTTP stack delivers them (latin-1 text without line breaks).
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=300)


def b64(data: bytes, *, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()


def assert_maps_to_4xx(error: ServiceError) -> None:
    assert 400 <= error_response(error, "c").status_code < 500


# --------------------------------------------------------------------------- Easy Auth principal

CLAIM = st.fixed_dictionaries(
    {},
    optional={
        "typ": st.sampled_from(
            ["roles", "groups", "oid", "name", "http://schemas.microsoft.com/identity/claims/objectidentifier"]
        )
        | JSON,
        "val": st.text(max_size=20) | JSON,
    },
)
PRINCIPAL_DOC = (
    st.fixed_dictionaries(
        {}, optional={"auth_typ": JSON, "claims": st.lists(CLAIM | JSON, max_size=5) | JSON, "role_typ": JSON, "name_typ": JSON}
    )
    | JSON
)
PRINCIPAL_HEADER = (
    PRINCIPAL_DOC.map(lambda doc: b64(json.dumps(doc).encode()))
    | st.binary(max_size=200).map(b64)
    | st.binary(max_size=200).map(lambda raw: b64(raw).rstrip("="))
    | HEADER_TEXT
)


@PROPERTY
@given(
    user_id=st.none() | HEADER_TEXT,
    idp=st.none() | HEADER_TEXT,
    principal=st.none() | PRINCIPAL_HEADER,
    required=st.sampled_from([frozenset(), frozenset({"CallAgent"})]),
)
def test_easy_auth_principal_parser_raises_only_domain_errors(user_id, idp, principal, required):
    headers = {
        k: v
        for k, v in {
            "X-MS-CLIENT-PRINCIPAL-ID": user_id,
            "X-MS-CLIENT-PRINCIPAL-IDP": idp,
            "X-MS-CLIENT-PRINCIPAL": principal,
        }.items()
        if v is not None
    }
    try:
        caller = asyncio.run(EasyAuthAuthenticator(required).authenticate(headers))
    except (UnauthenticatedError, ForbiddenError) as error:
        assert_maps_to_4xx(error)
        return
    assert caller.user_id == (user_id or "").strip() != ""
    assert all(isinstance(role, str) for role in caller.roles)
    assert not required or caller.roles & required


def test_easy_auth_deeply_nested_principal_is_401_not_a_crash():
    """Nesting beyond Python's recursion limit must be a malformed principal (401), not RecursionError (500)."""
    nested = b64(b'{"claims": ' + b"[" * 3000 + b"]" * 3000 + b"}")
    with pytest.raises(UnauthenticatedError):
        asyncio.run(
            EasyAuthAuthenticator(frozenset()).authenticate({"X-MS-CLIENT-PRINCIPAL-ID": "u", "X-MS-CLIENT-PRINCIPAL": nested})
        )


# --------------------------------------------------------------------------- JWT bearer


@pytest.fixture(scope="module")
def bearer_auth(issuer):
    """A jwt-mode authenticator and its own event loop (its JWKS session belongs to that loop)."""
    loop = asyncio.new_event_loop()
    auth = create_authenticator(load_auth_settings({"AUTH_MODE": "jwt", "AUTH_ISSUER": issuer.issuer, "AUTH_AUDIENCE": AUDIENCE}))
    loop.run_until_complete(auth.authenticate({"Authorization": f"Bearer {issuer.mint({'aud': AUDIENCE, 'oid': 'warm'})}"}))
    yield lambda headers: loop.run_until_complete(auth.authenticate(headers))
    loop.run_until_complete(auth.close())
    loop.close()


SEGMENT = st.one_of(
    JSON.map(lambda doc: b64(json.dumps(doc).encode(), urlsafe=True).rstrip("=")),
    st.binary(max_size=100).map(lambda raw: b64(raw, urlsafe=True).rstrip("=")),
    st.text(alphabet=string.ascii_letters + string.digits + "-_=+/.", max_size=60),
)
JOSE_HEADER = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "PS512", "RS1"]) | JSON,
        "kid": st.sampled_from(["key-1", "nope"]) | JSON,
        "typ": JSON,
        "crit": JSON,
        "jku": JSON,
    },
)
BEARER_VALUE = st.one_of(
    HEADER_TEXT,
    st.builds(
        lambda h, p, s: f"Bearer {h}.{p}.{s}",
        JOSE_HEADER.map(lambda d: b64(json.dumps(d).encode(), urlsafe=True).rstrip("=")),
        SEGMENT,
        SEGMENT,
    ),
    st.lists(SEGMENT, max_size=5).map(lambda parts: "Bearer " + ".".join(parts)),
)


@pytest.mark.integration  # verifies against a local OIDC issuer over loopback
@PROPERTY
@given(value=BEARER_VALUE)
def test_bearer_garbage_is_401(bearer_auth, value):
    with pytest.raises(UnauthenticatedError) as caught:
        bearer_auth({"Authorization": value})
    assert_maps_to_4xx(caught.value)


CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "aud": st.sampled_from([AUDIENCE, [AUDIENCE, "x"], "other"]) | JSON,
        "oid": st.text(max_size=10) | JSON,
        "sub": st.text(max_size=10) | JSON,
        "exp": st.integers(min_value=-(2**40), max_value=2**40) | JSON,
        "nbf": st.integers(min_value=-(2**40), max_value=2**40) | JSON,
        "iat": JSON,
        "iss": JSON,
        "roles": JSON,
        "groups": JSON,
    },
)


def sign(issuer: OidcIssuer, payload: Any) -> str:
    """An RS256 JWS over any JSON payload, signed with the issuer's current key (PyJWT's encoder refuses odd claims)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": issuer.current_kid}).encode(), urlsafe=True).rstrip("=")
    body = b64(json.dumps(payload).encode(), urlsafe=True).rstrip("=")
    signature = issuer.keys[issuer.current_kid].sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature, urlsafe=True).rstrip('=')}"


@pytest.mark.integration  # verifies against a local OIDC issuer over loopback
@PROPERTY
@given(claims=CLAIMS, iss=st.sampled_from(["issuer", "issuer/", "absent"]) | JSON)
def test_well_signed_tokens_with_arbitrary_claims_raise_only_domain_errors(bearer_auth, issuer, claims, iss):
    if iss == "issuer":
        claims = {**claims, "iss": issuer.issuer}
    elif iss == "issuer/":
        claims = {**claims, "iss": issuer.issuer + "/"}
    elif iss != "absent":
        claims = {**claims, "iss": iss}
    token = sign(issuer, claims)
    try:
        caller = bearer_auth({"Authorization": f"Bearer {token}"})
    except (UnauthenticatedError, ForbiddenError) as error:  # 403: an application's own token (oid == sub, roles only)
        assert_maps_to_4xx(error)
        return
    # Accepted only with the right audience and a usable user id from the oid claim (AUTH_USER_CLAIM's default).
    assert caller.provider == issuer.issuer
    assert isinstance(claims.get("iss"), str) and claims["iss"].rstrip("/") == issuer.issuer
    assert isinstance(caller.user_id, str) and caller.user_id == claims.get("oid")
    aud = claims.get("aud", AUDIENCE)
    assert aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud)


@pytest.mark.integration  # verifies against a local OIDC issuer over loopback
@PROPERTY
@given(payload=JSON)
def test_well_signed_tokens_whose_payload_is_not_an_object_are_401(bearer_auth, issuer, payload):
    with pytest.raises(UnauthenticatedError):
        bearer_auth({"Authorization": f"Bearer {sign(issuer, [payload])}"})


# --------------------------------------------------------------------------- request bodies and policy

CONTENT_TYPES = (
    st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "application/problem+json", "text/plain", "", "APPLICATION/JSON"]
    )
    | HEADER_TEXT
)
BODIES = st.one_of(
    JSON.map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(min_value=MAX_BODY_BYTES - 2, max_value=MAX_BODY_BYTES + 2).map(lambda n: b" " * (n - 2) + b"{}"),
)


def http_request(body: bytes, content_type: str | None) -> func.HttpRequest:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return func.HttpRequest("POST", "http://127.0.0.1/api/token", headers=headers, params={}, route_params={}, body=body)


@PROPERTY
@given(body=BODIES, content_type=st.none() | CONTENT_TYPES, required=st.booleans())
def test_body_reader_raises_only_domain_errors(body, content_type, required):
    try:
        value = read_json_object(http_request(body, content_type), required=required)
    except (InvalidRequestError, RequestRejected) as error:
        assert_maps_to_4xx(error)
        return
    assert isinstance(value, dict)
    assert len(body) <= MAX_BODY_BYTES
    assert body.strip() or not required  # an empty body is only accepted when optional


@pytest.mark.parametrize("depth", [1000, 5000, MAX_BODY_BYTES // 2 - 10])
def test_deeply_nested_body_is_400_not_a_crash(depth):
    """Nesting beyond Python's recursion limit (within the 16 KiB limit) must be invalid_json (400), not a 500."""
    for body in (b"[" * depth, b'{"scopes": ' + b"[" * depth + b"]" * depth + b"}"):
        assert len(body) <= MAX_BODY_BYTES
        with pytest.raises(InvalidRequestError) as caught:
            read_json_object(http_request(body, "application/json"), required=True)
        assert caught.value.code == "invalid_json"


POLICY_ENVS = [
    {},
    {"TOKEN_ALLOWED_SCOPES": "chat", "TOKEN_MAX_EXPIRY_MINUTES": "120"},
    {"TOKEN_ALLOWED_SCOPES": ",".join(sorted(ACS_SCOPES)), "TOKEN_DEFAULT_EXPIRY_MINUTES": "60"},
]
TOKEN_BODY = st.one_of(
    st.dictionaries(st.text(max_size=12), JSON, max_size=4),
    st.fixed_dictionaries(
        {},
        optional={
            "scopes": st.lists(st.sampled_from(sorted(ACS_SCOPES)) | st.text(max_size=10) | JSON, max_size=6) | JSON,
            "expiresInMinutes": st.integers(min_value=-10, max_value=3000) | st.floats() | st.booleans() | JSON,
        },
    ),
)


@PROPERTY
@given(body=TOKEN_BODY, env=st.sampled_from(POLICY_ENVS))
def test_token_request_policy_raises_only_domain_errors(body: dict[str, Any], env):
    policy = load_token_policy(env)
    try:
        request = parse_token_request(body, policy)
    except (InvalidRequestError, ForbiddenError) as error:
        assert_maps_to_4xx(error)
        return
    assert isinstance(request, TokenRequest)
    assert request.scopes and set(request.scopes) <= set(policy.allowed_scopes)
    assert 60 <= request.expires_in_minutes <= policy.max_expiry_minutes
    assert type(request.expires_in_minutes) is int


@pytest.mark.parametrize("depth", [33, 200])
def test_json_nested_past_the_services_limit_is_refused_on_every_python(depth):
    # 3.13's json parses what 3.11's gives up on: the explicit cap keeps both answers the same.
    body = b'{"scopes": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(InvalidRequestError) as caught:
        read_json_object(http_request(body, "application/json"), required=True)
    assert caught.value.code == "invalid_json"
    assert read_json_object(http_request(b'{"a": [[["ok"]]]}', "application/json"), required=True) == {"a": [[["ok"]]]}
