"""Who is calling, as established by verified authentication (never by the request body)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from shared.domain.errors import ForbiddenError


@dataclass(frozen=True)
class Caller:
    """A signed-in user: the identity provider and the user's stable id there, plus roles/groups."""

    provider: str  # identity provider: Easy Auth's IDP, the token issuer, or "dev"
    user_id: str  # stable id of the user at that provider
    roles: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """The identity map's key: unambiguous for any provider and user id (JSON, not concatenation)."""
        return user_key(self.provider, self.user_id)


def user_key(provider: str, user_id: str) -> str:
    """The key of a user in the identity map and the ledger (see :attr:`Caller.key`)."""
    return json.dumps([provider, user_id], ensure_ascii=False, separators=(",", ":"))


def user_digest(key: str) -> str:
    """SHA-256 hex of a user key: the storage row key, so raw user ids never become table keys."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def require_roles(caller: Caller, required: frozenset[str]) -> Caller:
    """The caller, if it holds one of ``required`` (or nothing is required); else 403."""
    if required and not (caller.roles & required):
        raise ForbiddenError("Your account is not allowed to get ACS tokens here.")
    return caller
