"""Who is calling, as established by verified authentication (never by the request body)."""

from __future__ import annotations

import hashlib
import hmac
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


def orphan_key(acs_user_id: str) -> str:
    """The ledger's user key for an identity no user is mapped to (an orphan the sweep must delete)."""
    return user_key("orphan", acs_user_id)


def user_digest(key: str) -> str:
    """SHA-256 hex of a user key: the storage row key, so raw user ids never become table keys."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def require_roles(caller: Caller, required: frozenset[str]) -> Caller:
    """The caller, if it holds one of ``required`` (or nothing is required); else 403."""
    if required and not (caller.roles & required):
        raise ForbiddenError("Your account is not allowed to get ACS tokens here.")
    return caller


def user_ref(secret: bytes, key: str, *, length: int = 16) -> str:
    """A keyed, non-reversible reference to a user for logs and the audit trail.

    HMAC-SHA256 with a secret the deployment keeps (``USER_REF_KEY``, or one generated once and
    kept in storage): unlike a plain hash, nobody who reads the logs can confirm a guessed user id
    offline. ``length`` hex digits (16 for log lines, more where references must not collide).
    """
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
