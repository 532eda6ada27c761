"""What a verified token says about its caller: a user's delegated token or an application's own, and its scopes.

This service gives ACS identities to signed-in users. A client-credentials token (an application
calling as itself) is valid for the API's audience too, so by default it must be told apart and
refused. The signs, each from its issuer's documentation (paraphrased):

* Entra ID's ``idtyp`` optional claim is ``app`` in app-only tokens and, with the
  ``include_user_token`` property, ``user`` in user tokens; Microsoft names it the most reliable
  way to tell the two apart (MicrosoftDocs/entra-docs,
  docs/identity-platform/optional-claims-reference.md). When it is present, it decides.
* In Entra ID an app-only token's ``oid`` equals its ``sub`` (both name the service principal),
  whereas a user's ``sub`` is pairwise per application and differs from their ``oid``
  (docs/identity-platform/scenario-protected-web-api-verification-scope-app-roles.md, which tests
  app-only as oid == sub; access-token-claims-reference.md on ``sub``). Only with
  ``AUTH_USER_CLAIM=oid``: in Azure AD B2C a user's ``sub`` *is* their object id, so ``oid == sub``
  for users there (MicrosoftDocs/azure-docs articles/active-directory-b2c/tokens-overview.md).
* Entra ID puts ``scp`` in user tokens only, and an application's permissions in ``roles`` instead
  (access-token-claims-reference.md). So ``roles`` without any ``scp``/``scope`` is an
  application's token.
* RFC 9068 section 2.2 (JWT access tokens): when no resource owner is involved, as in the client
  credentials grant, ``sub`` names the client, i.e. equals ``client_id`` (Entra: ``azp`` v2,
  ``appid`` v1; Okta: ``cid``). Auth0 writes ``sub`` as ``<client id>@clients`` and adds
  ``gty: client-credentials``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Claims that name the OAuth client the token was issued to (RFC 9068 client_id; Entra v2 azp, v1 appid; Okta cid).
CLIENT_ID_CLAIMS = ("client_id", "azp", "appid", "cid")


def app_only_reason(claims: Mapping[str, Any], user_claim: str) -> str | None:
    """Why this token is an application's own rather than a user's (a short phrase), or None for a user's token."""
    idtyp = claims.get("idtyp")
    if idtyp is not None:
        return None if idtyp == "user" else f"its idtyp is {str(idtyp)[:16]!r}"
    sub = claims.get("sub")
    if user_claim == "oid" and isinstance(sub, str) and sub and claims.get("oid") == sub:
        return "its oid equals its sub"
    if claims.get("gty") == "client-credentials":
        return "it was granted by client credentials"
    if isinstance(sub, str) and sub:
        for name in CLIENT_ID_CLAIMS:
            client = claims.get(name)
            if isinstance(client, str) and client and sub in (client, f"{client}@clients"):
                return "its subject is the client application"
    if any(claim_strings(claims.get("roles"))) and not token_scopes(claims):
        return "it carries roles but no delegated scope"
    return None


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The delegated scopes granted: ``scp`` (Entra, space-separated; Okta, a list) and ``scope`` (RFC 9068, Auth0)."""
    scopes: set[str] = set()
    for name in ("scp", "scope"):
        for value in claim_strings(claims.get(name)):
            scopes.update(value.split())
    return frozenset(scopes)


def claim_strings(value: Any) -> list[str]:
    """A claim that may be one string or a list of them, as a list of its strings (anything else: empty)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
