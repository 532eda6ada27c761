"""Identity lookup for support: from an app user to their ACS identity, and back, with the history.

"Who is this ACS id?" and "when was this user signed out, and by whom?" in one call each. The
reverse direction goes through the identity map's reverse index, checked against the map itself:
an entry whose mapping is gone or points elsewhere (a crash between the two writes) is reported
and dropped, so the index heals as it is used.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.domain.clock import format_utc
from shared.domain.journal import AUDIT_REF_LENGTH
from shared.domain.models import ACTIONS, IdentityRecord, request_row_key
from shared.domain.ports import AuditLog, IdentityMap, RevocationLedger
from shared.domain.references import UserReferences

HISTORY_LIMIT = 100


def split_user_key(key: str) -> tuple[str, str] | None:
    """(provider, user id) from a user key (``["provider","id"]``); None for anything else."""
    try:
        value = json.loads(key)
    except ValueError:
        return None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value):
        return value[0], value[1]
    return None


def _identity(record: IdentityRecord) -> dict[str, Any]:
    def time(value: datetime | None) -> str | None:
        return format_utc(value) if value is not None else None

    document: dict[str, Any] = {
        "acsUserId": record.acs_user_id,
        "acsResource": record.acs_resource,
        "createdAt": time(record.created_at),
        "lastIssuedAt": time(record.last_issued_at),
        "lastRevokedAt": time(record.last_revoked_at),
    }
    if record.previous_acs_user_id:
        document["previous"] = {
            "acsUserId": record.previous_acs_user_id,
            "acsResource": record.previous_acs_resource,
            "replacedAt": time(record.replaced_at),
        }
    return document


class IdentityLookup:
    """The operators' lookups (function key); answers are JSON documents without tokens."""

    def __init__(self, identities: IdentityMap, ledger: RevocationLedger, audit: AuditLog, references: UserReferences) -> None:
        self._identities = identities
        self._ledger = ledger
        self._audit = audit
        self._references = references

    async def by_user(self, provider: str, user_id: str) -> dict[str, Any]:
        """The user's identity (or null), pending requests and history."""
        key = json.dumps([provider, user_id], ensure_ascii=False, separators=(",", ":"))
        record = await self._identities.get(key)
        return {
            "user": {"provider": provider, "userId": user_id},
            "identity": _identity(record) if record is not None else None,
            "pendingRequests": await self._pending(key),
            "history": await self._history(key),
        }

    async def by_acs_id(self, acs_user_id: str) -> dict[str, Any] | None:
        """The app user an ACS identity belongs (or belonged) to; None when the index does not know it."""
        key = await self._identities.user_key_for(acs_user_id)
        if key is None:
            return None
        record = await self._identities.get(key)
        if record is not None and record.acs_user_id == acs_user_id:
            relation = "current"
        elif record is not None and record.previous_acs_user_id == acs_user_id:
            relation = "previous"
        else:
            await self._identities.forget_index(acs_user_id)  # the mapping is gone or moved on: heal the index
            return None
        split = split_user_key(key)
        return {
            "acsUserId": acs_user_id,
            "relation": relation,
            "user": {"provider": split[0], "userId": split[1]} if split else None,
            "identity": _identity(record),
            "pendingRequests": await self._pending(key),
            "history": await self._history(key),
        }

    async def _pending(self, key: str) -> list[dict[str, Any]]:
        pending = []
        for action in ACTIONS:
            request = await self._ledger.get(request_row_key(action, key))
            if request is not None:
                pending.append(
                    {
                        "action": request.action,
                        "source": request.source,
                        "reason": request.reason,
                        "requestedAt": format_utc(request.requested_at),
                        "notBefore": format_utc(request.not_before),
                        "attempts": request.attempts,
                    }
                )
        return pending

    async def _history(self, key: str) -> list[dict[str, Any]]:
        user_ref = await self._references.ref(key, length=AUDIT_REF_LENGTH)
        return [
            {
                "event": entry.event,
                "source": entry.source,
                "reason": entry.reason,
                "at": format_utc(entry.at),
                "acsUserId": entry.acs_user_id,
            }
            async for entry in self._audit.history(user_ref, limit=HISTORY_LIMIT)
        ]
