"""What the domain needs from the outside world, as interfaces (``typing.Protocol``).

The adapters in :mod:`shared.adapters` implement them against ACS and Azure Storage;
``tests/support/fakes.py`` implements them in memory, so the token service's and the
sweep's decisions are unit-tested in milliseconds. Every method raises only
:mod:`shared.domain.errors` (an SDK exception never crosses this line).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from shared.domain.caller import Caller
from shared.domain.models import Action, AuditEntry, IdentityRecord, IssuedToken, RevocationRequest


class AcsIdentityService(Protocol):
    """ACS Identity: the operations of Microsoft's access-token quickstart.

    Raises ``NotFoundError`` when ACS no longer knows an identity, ``ThrottledError`` /
    ``UnavailableError`` (with ``retry_after``) for 429 and outages.
    """

    async def create_identity_with_token(
        self, scopes: Sequence[str], expires_in_minutes: int | None = None
    ) -> tuple[str, IssuedToken]: ...

    async def issue_token(
        self, acs_user_id: str, scopes: Sequence[str], expires_in_minutes: int | None = None
    ) -> IssuedToken: ...

    async def revoke_tokens(self, acs_user_id: str) -> None: ...

    async def delete_identity(self, acs_user_id: str) -> None: ...

    async def exchange_teams_token(self, teams_token: str, client_id: str, user_object_id: str) -> IssuedToken: ...

    async def close(self) -> None: ...


class IdentityMap(Protocol):
    """The durable map from app user to ACS identity (one row per user)."""

    async def get(self, user_key: str) -> IdentityRecord | None: ...

    async def get_by_row_key(self, row_key: str) -> IdentityRecord | None:
        """The record named by its digest (what sweep work items carry instead of user ids)."""
        ...

    async def insert(self, user_key: str, acs_user_id: str, now: datetime, *, resource: str | None = None) -> IdentityRecord:
        """Create-if-absent; raises ``IdentityConflict`` with the winner's record when a race was lost."""
        ...

    async def replace(self, previous: IdentityRecord, acs_user_id: str, now: datetime, *, resource: str) -> IdentityRecord:
        """Map the user to a new identity in place of ``previous`` (kept as the previous mapping).

        Only if the row is unchanged since ``previous`` was read; else ``IdentityConflict`` with the
        current row (or, if it is gone meanwhile, the new mapping is inserted).
        """
        ...

    async def record_issued(self, user_key: str, when: datetime) -> None:
        """Note a token issue (one write, no read); nothing happens if the row is gone."""
        ...

    async def record_revoked(self, user_key: str, when: datetime) -> None: ...

    async def delete(self, user_key: str, *, etag: str | None = None, acs_user_id: str | None = None) -> bool:
        """Idempotent; with ``etag``, only if unchanged since read (False if it changed).

        With ``acs_user_id``, that identity's reverse-index entry goes too once the mapping is gone.
        """
        ...

    async def user_key_for(self, acs_user_id: str) -> str | None:
        """The reverse index: which user an ACS identity was mapped to (check the map: it may be stale)."""
        ...

    async def forget_index(self, acs_user_id: str) -> None:
        """Drop a reverse-index entry whose mapping is gone (a crash between the two writes)."""
        ...

    async def repair_index(self, cursor: Mapping[str, Any] | None, limit: int) -> tuple[dict[str, Any], int]:
        """Check up to ``limit`` index entries and ``limit`` mappings from ``cursor`` on, fixing disagreements.

        Returns where to go on next time (it wraps around at the end) and how many were fixed.
        """
        ...

    def iter_records(
        self, *, issued_since: datetime | None = None, issued_before: datetime | None = None, page_size: int = 1000
    ) -> AsyncIterator[IdentityRecord]:
        """Every record whose LastIssuedAt is within the bounds, each once, streamed."""
        ...

    async def close(self) -> None: ...


class RevocationLedger(Protocol):
    """Durable revocation requests plus the sweep's status documents."""

    async def record(
        self, action: Action, user_key: str, *, reason: str, source: str, now: datetime, acs_user_id: str | None = None
    ) -> RevocationRequest:
        """Upsert a pending request; a repeat for the same user merges and resets its back-off."""
        ...

    async def get(self, row_key: str) -> RevocationRequest | None: ...

    async def complete(self, request: RevocationRequest) -> bool:
        """Remove a done request; False (it stays) if it changed since it was read."""
        ...

    async def postpone(self, request: RevocationRequest, until: datetime, error_code: str | None = None) -> None: ...

    async def lease(self, row_keys: Sequence[str], until: datetime) -> None:
        """Hide requests from planning until ``until`` (a queue batch owns them)."""
        ...

    def due(self, now: datetime, page_size: int = 500) -> AsyncIterator[RevocationRequest]: ...

    async def count_pending(self, cap: int = 10_000) -> tuple[int, bool]: ...

    async def save_status(self, name: str, document: Mapping[str, Any]) -> None: ...

    async def load_status(self, name: str) -> dict[str, Any] | None: ...

    async def create_campaign(self, campaign_id: str, document: Mapping[str, Any]) -> None: ...

    async def campaign(self, campaign_id: str) -> dict[str, Any] | None: ...

    async def campaigns(self) -> list[dict[str, Any]]: ...

    async def update_campaign(
        self, campaign_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Apply ``change`` to the stored document atomically (retried on a race); None when it is gone."""
        ...

    async def close(self) -> None: ...


class AuditLog(Protocol):
    """The append-only audit trail, one partition per user reference."""

    async def append(self, entry: AuditEntry) -> None: ...

    def history(self, user_ref: str, limit: int = 100) -> AsyncIterator[AuditEntry]:
        """A user's entries, newest first."""
        ...

    async def prune(self, before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` entries older than ``before``; how many went."""
        ...

    async def close(self) -> None: ...


class SecretStore(Protocol):
    """Small secrets the deployment generates once and keeps (the user-reference key)."""

    async def get_or_create(self, name: str, new_value: str) -> str:
        """The stored value of ``name``; stores ``new_value`` first if there is none (first writer wins)."""
        ...

    async def close(self) -> None: ...


class BatchQueue(Protocol):
    """Where the sweep's leftover work goes as delayed batches (the revocation queue)."""

    async def send(self, message: str, delay_seconds: float) -> None: ...

    async def poison_count(self) -> int:
        """Batches the host gave up on; -1 when it cannot be read."""
        ...

    async def close(self) -> None: ...


class Authenticator(Protocol):
    """Turns a request's headers into a verified :class:`Caller`, or raises 401/403 errors."""

    async def authenticate(self, headers: Mapping[str, str]) -> Caller: ...

    async def close(self) -> None: ...
