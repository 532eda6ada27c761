"""What a caller may ask for: scopes and token lifetime, checked against this deployment's policy.

An unknown scope or a bad expiry is the caller's mistake (400); a real ACS scope that
this deployment does not hand out is a refusal (403).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain.errors import ForbiddenError, InvalidRequestError
from shared.domain.validation import reject_unknown_fields

#: Scopes ACS accepts for Communication Services user tokens.
ACS_SCOPES: frozenset[str] = frozenset({"chat", "voip", "chat.join", "chat.join.limited", "voip.join"})
#: ACS accepts a custom token lifetime within this interval (minutes).
ACS_MIN_EXPIRY_MINUTES = 60
ACS_MAX_EXPIRY_MINUTES = 1440

TOKEN_REQUEST_FIELDS = frozenset({"scopes", "expiresInMinutes"})


@dataclass(frozen=True)
class TokenPolicy:
    """What this deployment hands out (``TOKEN_*`` settings)."""

    allowed_scopes: frozenset[str]
    default_scopes: tuple[str, ...]
    default_expiry_minutes: int
    max_expiry_minutes: int
    #: tokens one user may get per minute (per worker); 0 disables the limit
    per_user_per_minute: int
    #: revokes and deletes one user may ask for per hour (per worker); 0 disables the limit
    revokes_per_user_per_hour: int = 6
    #: token issues (and, separately, identity creations) the whole fleet may ask ACS for per 30 s;
    #: beyond, 429 at once without calling ACS. 0 = off: ACS's own 429s are answered (fast) instead
    fleet_rate_per_30s: int = 0


@dataclass(frozen=True)
class TokenRequest:
    """A validated request for a token: scopes and lifetime."""

    scopes: tuple[str, ...]
    expires_in_minutes: int


def parse_token_request(body: Mapping[str, Any], policy: TokenPolicy) -> TokenRequest:
    """Validate ``{"scopes": [...], "expiresInMinutes": N}``; both optional."""
    reject_unknown_fields(body, TOKEN_REQUEST_FIELDS)
    return TokenRequest(
        scopes=_scopes(body.get("scopes"), policy) if "scopes" in body else policy.default_scopes,
        expires_in_minutes=_expiry(body.get("expiresInMinutes"), policy)
        if "expiresInMinutes" in body
        else policy.default_expiry_minutes,
    )


def _scopes(raw: object, policy: TokenPolicy) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise InvalidRequestError("scopes must be a non-empty array of strings.", code="invalid_scopes", target="scopes")
    scopes = tuple(dict.fromkeys(raw))
    unknown = [s for s in scopes if s not in ACS_SCOPES]
    if unknown:
        raise InvalidRequestError(
            f"Unknown scope(s): {', '.join(unknown)[:100]}. ACS scopes are {', '.join(sorted(ACS_SCOPES))}.",
            code="invalid_scopes",
            target="scopes",
        )
    refused = [s for s in scopes if s not in policy.allowed_scopes]
    if refused:
        raise ForbiddenError(
            f"Scope(s) not allowed here: {', '.join(refused)}. Allowed: {', '.join(sorted(policy.allowed_scopes))}.",
            code="scope_not_allowed",
        )
    return scopes


def _expiry(raw: object, policy: TokenPolicy) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not ACS_MIN_EXPIRY_MINUTES <= raw <= policy.max_expiry_minutes:
        raise InvalidRequestError(
            f"expiresInMinutes must be a whole number within [{ACS_MIN_EXPIRY_MINUTES}, {policy.max_expiry_minutes}].",
            code="invalid_expiry",
            target="expiresInMinutes",
        )
    return raw
