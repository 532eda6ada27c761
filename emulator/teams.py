"""The Teams user token exchange, checked in the order real ACS checks it (references.py, PY_RECORDINGS).

1. The Entra ID token: empty, malformed, for another audience or expired -> 401 ``InvalidAccessToken``, before any
   other field is looked at (an empty token with an empty ``userId`` is still 401).
2. ``appId`` / ``userId`` missing or empty -> 400 "AppId: The AppId field is required." (target ``AppId`` / ``UserId``).
3. Not a GUID -> 400 "Provided AppId has invalid format." (target ``appId``; ``userId`` likewise).
4. Not the token's ``appid``/``azp`` -> 400 "AAD application is not the expected one." (target ``appId``);
   not its ``oid`` -> 400 "Provided AAD token issued for unexpected user." (target ``userId``).

There is no Entra ID here, so the token's signature is not checked: any JWT-shaped token with the right claims
passes step 1 (our choice, documented in README.md).
"""

from __future__ import annotations

import time
from typing import Any

from emulator.errors import AcsError, required_field, validation_error
from emulator.identity_ids import is_guid
from emulator.references import (
    APP_ID_INVALID_FORMAT,
    APP_ID_NOT_EXPECTED,
    INVALID_ACCESS_TOKEN,
    USER_ID_INVALID_FORMAT,
    USER_ID_NOT_EXPECTED,
)
from emulator.tokens import decode_unverified

TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"


class TeamsUser:
    """A Teams user whose Entra ID token passed every check: their ACS id and how long the token still lives."""

    def __init__(self, object_id: str, expires_at: float) -> None:
        self.identity_id = f"8:orgid:{object_id}"
        self.expires_at = expires_at


def _token_claims(token: Any) -> dict[str, Any]:
    """The claims of a usable Entra ID token for ACS; 401 otherwise."""
    code, message = INVALID_ACCESS_TOKEN
    invalid = AcsError(401, code, message)
    if not isinstance(token, str) or not token:
        raise invalid
    try:
        claims = decode_unverified(token)
    except (IndexError, ValueError, TypeError):
        raise invalid from None
    if (
        not isinstance(claims, dict)
        or str(claims.get("aud", "")).rstrip("/") != TEAMS_AUDIENCE
        or not isinstance(claims.get("oid"), str)
        or not isinstance(claims.get("appid") or claims.get("azp"), str)
        or not isinstance(claims.get("exp"), int | float)
        or claims["exp"] <= time.time()
    ):
        raise invalid
    return claims


def _present(payload: dict[str, Any], name: str, field: str) -> str:
    value = payload.get(name)
    if value is None or value == "":
        raise required_field(field)
    return value if isinstance(value, str) else str(value)


def verify_exchange(payload: dict[str, Any]) -> TeamsUser:
    """The Teams user a ``{"token", "appId", "userId"}`` body stands for, or the AcsError real ACS would answer."""
    claims = _token_claims(payload.get("token"))
    app_id = _present(payload, "appId", "AppId")
    user_id = _present(payload, "userId", "UserId")
    if not is_guid(app_id):
        raise validation_error(*APP_ID_INVALID_FORMAT)
    if not is_guid(user_id):
        raise validation_error(*USER_ID_INVALID_FORMAT)
    if app_id.lower() != str(claims.get("appid") or claims.get("azp")).lower():
        raise validation_error(*APP_ID_NOT_EXPECTED)
    if user_id.lower() != str(claims["oid"]).lower():
        raise validation_error(*USER_ID_NOT_EXPECTED)
    return TeamsUser(user_id, float(claims["exp"]))
