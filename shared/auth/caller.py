"""Who is calling, as established by verified authentication."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from shared.errors import ForbiddenError


@dataclass(frozen=True)
class Caller:
    provider: str  # identity provider: Easy Auth's IDP, the token issuer, or "dev"
    user_id: str  # stable id of the user at that provider
    roles: frozenset[str]

    @property
    def key(self) -> str:
        """The identity map's key: unambiguous for any provider and user id."""
        return json.dumps([self.provider, self.user_id], ensure_ascii=False, separators=(",", ":"))


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Caller: ...

    async def close(self) -> None: ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (HttpRequest.headers is; a plain dict is not)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def require_roles(caller: Caller, required: frozenset[str]) -> Caller:
    if required and not (caller.roles & required):
        raise ForbiddenError("Your account is not allowed to get ACS tokens here.")
    return caller
