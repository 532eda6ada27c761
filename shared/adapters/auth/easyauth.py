"""AUTH_MODE=easyauth: App Service Authentication in front of the app.

The platform validates the user's session and injects X-MS-CLIENT-PRINCIPAL*
headers, stripping any the client sent. Only use this mode when Easy Auth is
really enabled and requires authentication.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from shared.adapters.auth.headers import header
from shared.adapters.lifecycle import AsyncClosable
from shared.domain.caller import Caller, require_roles
from shared.domain.errors import UnauthenticatedError
from shared.domain.validation import nested_deeper_than

ROLE_TYPES = {"roles", "groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}
OID_TYPES = {"oid", "http://schemas.microsoft.com/identity/claims/objectidentifier"}


def decode_principal(raw: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # nesting deeper than Python's limit
        raise UnauthenticatedError("The X-MS-CLIENT-PRINCIPAL header is malformed.") from None
    if not isinstance(document, dict) or not isinstance(document.get("claims", []), list) or nested_deeper_than(document):
        raise UnauthenticatedError("The X-MS-CLIENT-PRINCIPAL header is malformed.")
    return document


class EasyAuthAuthenticator(AsyncClosable):
    def __init__(self, required_roles: frozenset[str]) -> None:
        self._required_roles = required_roles

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        user_id = (header(headers, "X-MS-CLIENT-PRINCIPAL-ID") or "").strip()
        if not user_id:
            raise UnauthenticatedError("Sign in first: no authenticated user (App Service Authentication).")
        provider = (header(headers, "X-MS-CLIENT-PRINCIPAL-IDP") or "easyauth").strip().lower()
        roles: set[str] = set()
        raw = header(headers, "X-MS-CLIENT-PRINCIPAL")
        if raw:
            principal = decode_principal(raw.strip())
            role_types = ROLE_TYPES | {str(principal.get("role_typ") or "roles")}
            for claim in principal.get("claims", []):
                if not isinstance(claim, dict):
                    continue
                typ, val = str(claim.get("typ", "")), claim.get("val")
                if not isinstance(val, str):
                    continue
                if typ in role_types:
                    roles.add(val)
                elif typ in OID_TYPES and val != user_id:
                    raise UnauthenticatedError("The client principal does not match the principal id.")
        return require_roles(Caller(provider, user_id, frozenset(roles)), self._required_roles)

    async def close(self) -> None:
        return None
