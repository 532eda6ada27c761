"""AUTH_MODE=jwt: OpenID Connect bearer tokens (Entra ID, Entra External ID/B2C, any OIDC issuer).

After the signature and the registered claims are verified, the token must be a user's
delegated token (not an application's own, unless AUTH_ALLOW_APP_TOKENS), name the user in the
one claim AUTH_USER_CLAIM chooses (one claim, one key space: a token without it is refused,
never keyed by another claim), and carry AUTH_REQUIRED_SCOPES / AUTH_REQUIRED_ROLES if set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from shared.adapters.auth.headers import header
from shared.adapters.auth.jwks import JwksFetcher
from shared.adapters.auth.key_cache import KeyCachePolicy, SigningKeyCache
from shared.adapters.auth.token_kind import app_only_reason, claim_strings, token_scopes
from shared.adapters.lifecycle import AsyncClosable
from shared.domain.caller import Caller, require_roles
from shared.domain.errors import ForbiddenError, SettingsError, UnauthenticatedError
from shared.settings import AuthSettings

#: Asymmetric algorithms only: never "none", never HS* (a public key must not become an HMAC secret).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LEEWAY_SECONDS = 60
REALM = 'Bearer realm="acs-token-service"'


def invalid_token(reason: str) -> UnauthenticatedError:
    return UnauthenticatedError(
        f"The bearer token is invalid: {reason}.",
        www_authenticate=f'Bearer error="invalid_token", error_description="{reason}"',
    )


class JwtBearerAuthenticator(AsyncClosable):
    def __init__(self, settings: AuthSettings) -> None:
        if settings.issuer is None:  # load_auth_settings requires it in jwt mode
            raise SettingsError("AUTH_ISSUER", "is required when AUTH_MODE=jwt")
        self._issuer = settings.issuer
        self._audiences = list(settings.audiences)
        self._required_roles = settings.required_roles
        self._required_scopes = settings.required_scopes
        self._user_claim = settings.user_claim
        self._allow_app_tokens = settings.allow_app_tokens
        self._fetcher = JwksFetcher(settings.issuer, settings.jwks_url)
        self.keys = SigningKeyCache(self._fetcher, KeyCachePolicy(min_interval=settings.jwks_min_interval_seconds))

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        scheme, _, token = (header(headers, "Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("Send Authorization: Bearer <access token>.", www_authenticate=REALM)
        claims = await self._verify(token.strip())
        if not self._allow_app_tokens and (reason := app_only_reason(claims, self._user_claim)) is not None:
            raise ForbiddenError(
                f"ACS identities are for signed-in users; this is an application's own token ({reason}).",
                code="user_token_required",
            )
        user_id = claims.get(self._user_claim)
        if not isinstance(user_id, str) or not user_id.strip():
            raise invalid_token(f"no {self._user_claim} claim")
        if self._required_scopes and not (token_scopes(claims) & self._required_scopes):
            raise ForbiddenError(
                f"The token has none of the scopes this service requires ({', '.join(sorted(self._required_scopes))}).",
                code="insufficient_scope",
                # RFC 6750 section 3.1: the resource server names the scope it needs
                www_authenticate=f'Bearer error="insufficient_scope", scope="{" ".join(sorted(self._required_scopes))}"',
            )
        roles = {r for name in ("roles", "groups") for r in claim_strings(claims.get(name))}
        return require_roles(Caller(self._issuer, user_id, frozenset(roles)), self._required_roles)

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            unverified = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("malformed token") from None
        algorithm = unverified.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise invalid_token("signing algorithm not allowed")
        kid = unverified.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise invalid_token("unknown signing key")  # a kid is a string (RFC 7515 4.1.4): nothing to fetch for
        key = await self.keys.key_for(kid)
        if key is None:
            raise invalid_token("unknown signing key")
        if getattr(key, "key_type", None) != ("EC" if algorithm.startswith("ES") else "RSA"):
            raise invalid_token("signing key does not fit the algorithm")  # e.g. ES256 named with an RSA key's kid
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self._audiences,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"], "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("token expired") from None
        except jwt.ImmatureSignatureError:
            raise invalid_token("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("wrong audience") from None
        except (jwt.PyJWTError, TypeError, ValueError):  # PyJWT raises TypeError for a key of the wrong kind
            raise invalid_token("signature or claims rejected") from None
        if str(claims.get("iss", "")).rstrip("/") != self._issuer.rstrip("/"):
            raise invalid_token("wrong issuer")
        return claims

    async def close(self) -> None:
        await self.keys.close()
        await self._fetcher.close()
