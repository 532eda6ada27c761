"""Telling a user's delegated token from an application's own (issue 11, item 4), on each issuer's documented claims.

References (each test names the one it relies on; paraphrased):
- [idtyp] MicrosoftDocs/entra-docs docs/identity-platform/optional-claims-reference.md: ``idtyp`` is ``app`` in
  app-only access tokens, ``user`` in user tokens with ``include_user_token``.
- [oid==sub] MicrosoftDocs/entra-docs docs/identity-platform/scenario-protected-web-api-verification-scope-app-roles.md:
  an app-only token is one whose ``oid`` and ``sub`` are both present and equal.
- [scp] MicrosoftDocs/entra-docs docs/identity-platform/access-token-claims-reference.md: ``scp`` is in user tokens
  only; the client credentials flow puts the application's permissions in ``roles`` instead.
- [b2c] MicrosoftDocs/azure-docs articles/active-directory-b2c/tokens-overview.md: ``sub`` is by default the user's
  object id.
- [rfc9068] RFC 9068 section 2.2: with the client credentials grant, ``sub`` identifies the client.
- [auth0] Auth0 client-credentials access tokens: ``sub`` is ``<client id>@clients``, ``gty`` is ``client-credentials``.
"""

from __future__ import annotations

import pytest

from shared.adapters.auth.token_kind import app_only_reason, token_scopes

TENANT_ISSUER = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
API_CLIENT = "aaaaaaaa-0000-0000-0000-000000000001"
SPA_CLIENT = "bbbbbbbb-0000-0000-0000-000000000002"
DAEMON_CLIENT = "cccccccc-0000-0000-0000-000000000003"
USER_OID = "dddddddd-0000-0000-0000-000000000004"
DAEMON_SP_OID = "eeeeeeee-0000-0000-0000-000000000005"

ENTRA_USER = {"iss": TENANT_ISSUER, "aud": API_CLIENT, "azp": SPA_CLIENT, "oid": USER_OID, "sub": "pairwise-sub-of-user"}
ENTRA_DELEGATED = {**ENTRA_USER, "scp": "access_as_user", "ver": "2.0"}
ENTRA_CLIENT_CREDENTIALS = {
    "iss": TENANT_ISSUER,
    "aud": API_CLIENT,
    "azp": DAEMON_CLIENT,
    "oid": DAEMON_SP_OID,
    "sub": DAEMON_SP_OID,
    "roles": ["Tokens.Issue"],
    "ver": "2.0",
}


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(ENTRA_DELEGATED, id="entra-delegated"),  # [scp]
        pytest.param({**ENTRA_DELEGATED, "roles": ["Agent"]}, id="entra-delegated-with-app-roles"),  # [scp]
        pytest.param({**ENTRA_DELEGATED, "idtyp": "user"}, id="entra-idtyp-user"),  # [idtyp]
        pytest.param({**ENTRA_USER, "ver": "1.0", "appid": SPA_CLIENT, "scp": "user_impersonation"}, id="entra-v1"),
    ],
)
def test_entra_user_tokens_are_users_tokens(claims):
    assert app_only_reason(claims, "oid") is None


@pytest.mark.parametrize(
    "claims, reason",
    [
        pytest.param(ENTRA_CLIENT_CREDENTIALS, "its oid equals its sub", id="client-credentials-with-roles"),  # [oid==sub]
        pytest.param(
            {k: v for k, v in ENTRA_CLIENT_CREDENTIALS.items() if k != "roles"}, "its oid equals its sub", id="acl-style"
        ),  # [oid==sub]: no roles and no scp at all
        pytest.param({**ENTRA_CLIENT_CREDENTIALS, "idtyp": "app"}, "its idtyp is 'app'", id="idtyp-app"),  # [idtyp]
        pytest.param({**ENTRA_USER, "idtyp": "app"}, "its idtyp is 'app'", id="idtyp-app-decides"),  # [idtyp] beats the rest
        pytest.param({**ENTRA_USER, "idtyp": "device"}, "its idtyp is 'device'", id="idtyp-device"),  # [idtyp]
        pytest.param({**ENTRA_USER, "roles": ["Tokens.Issue"]}, "it carries roles but no delegated scope", id="roles-no-scp"),
    ],
)
def test_entra_app_only_tokens_are_told_apart(claims, reason):
    assert app_only_reason(claims, "oid") == reason


def test_idtyp_user_is_authoritative_even_where_oid_equals_sub():
    """[idtyp]: 'the most accurate way'; no other rule second-guesses it."""
    assert app_only_reason({**ENTRA_CLIENT_CREDENTIALS, "idtyp": "user", "scp": "x"}, "oid") is None


def test_b2c_users_whose_sub_is_their_object_id_are_users_under_the_sub_claim():
    """[b2c]: sub == oid for a B2C user (when the user flow also emits oid), so oid == sub means nothing there."""
    b2c = {"iss": "https://contoso.b2clogin.com/t/v2.0/", "sub": USER_OID, "oid": USER_OID, "tfp": "B2C_1_susi", "scp": "read"}
    assert app_only_reason(b2c, "sub") is None
    assert app_only_reason(b2c, "oid") == "its oid equals its sub"  # why the README says: B2C takes AUTH_USER_CLAIM=sub


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": "auth0|64f0c2", "azp": "Zk3mPq7R", "scope": "openid profile tokens:issue"}, id="auth0-user"),
        pytest.param({"sub": "110169484474386276334", "azp": "1234.apps.googleusercontent.com"}, id="google-id-token"),
        pytest.param({"sub": "00u1a2b3", "cid": "0oa9x8y7", "scp": ["openid", "tokens.issue"]}, id="okta-user"),
        pytest.param({"sub": "user-42", "client_id": "web-app", "scope": "tokens"}, id="rfc9068-user"),
    ],
)
def test_other_issuers_user_tokens_are_users_tokens(claims):
    assert app_only_reason(claims, "sub") is None


@pytest.mark.parametrize(
    "claims, reason",
    [
        pytest.param(
            {"sub": "Zk3mPq7R@clients", "azp": "Zk3mPq7R", "gty": "client-credentials", "scope": "tokens:issue"},
            "it was granted by client credentials",
            id="auth0-m2m",
        ),  # [auth0]
        pytest.param(
            {"sub": "Zk3mPq7R@clients", "azp": "Zk3mPq7R", "scope": "tokens:issue"},
            "its subject is the client application",
            id="auth0-m2m-without-gty",
        ),  # [auth0]
        pytest.param(
            {"sub": "daemon", "client_id": "daemon", "scope": "tokens"}, "its subject is the client application", id="rfc9068"
        ),  # [rfc9068]
        pytest.param(
            {"sub": "0oa9x8y7", "cid": "0oa9x8y7", "scp": ["tokens"]}, "its subject is the client application", id="okta"
        ),
    ],
)
def test_other_issuers_client_credentials_tokens_are_told_apart(claims, reason):
    assert app_only_reason(claims, "sub") == reason


def test_oid_equal_to_sub_is_only_a_sign_under_the_oid_claim():
    assert app_only_reason({"oid": "x", "sub": "x", "scope": "s"}, "sub") is None
    assert app_only_reason({"oid": "x", "sub": "x", "scope": "s"}, "oid") == "its oid equals its sub"
    assert app_only_reason({"oid": "", "sub": "", "scope": "s"}, "oid") is None  # empty: no user either way (401 later)


def test_scopes_from_scp_and_scope_in_every_shape():
    assert token_scopes({"scp": "a  b"}) == {"a", "b"}  # [scp]: space-separated
    assert token_scopes({"scope": "c d"}) == {"c", "d"}  # RFC 9068 / Auth0
    assert token_scopes({"scp": ["e", "f g", 3]}) == {"e", "f", "g"}  # Okta: a list
    assert token_scopes({"scp": 5, "scope": {"x": 1}}) == frozenset()
    assert token_scopes({}) == frozenset()
