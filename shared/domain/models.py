"""The values the domain passes between its parts and its adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.domain.caller import user_digest

#: the longest an issue can take between ACS minting a token and the map recording it (LastIssuedAt, or
#: CreatedAt for the token that comes with a new identity), or the other way round: the ACS client's
#: timeouts and retries stay well under it. A revoke that began this long after the last recorded issue
#: has killed every token; an identity recorded this long after a moment holds no token from before it.
ISSUE_IN_FLIGHT_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class IssuedToken:
    """An ACS access token and when it expires (UTC)."""

    token: str
    expires_on: datetime

    def __repr__(self) -> str:  # never show the token itself
        return f"IssuedToken(token=<redacted>, expires_on={self.expires_on.isoformat()})"


@dataclass(frozen=True)
class IdentityRecord:
    """One row of the identity map: an app user and their one ACS identity."""

    user_key: str
    acs_user_id: str
    created_at: datetime
    last_issued_at: datetime | None
    last_revoked_at: datetime | None
    #: the stored row's version when read (for conditional deletes); None when built locally
    etag: str | None = field(default=None, compare=False)
    #: the ACS resource the identity lives in (see AcsSettings.resource); None for mappings made
    #: before it was recorded, which ACS itself then judges (401 IdentityNotOwned)
    acs_resource: str | None = None
    #: the mapping this one replaced because it belonged to another ACS resource (kept for operators)
    previous_acs_user_id: str | None = None
    previous_acs_resource: str | None = None
    replaced_at: datetime | None = None

    def replaced_by(self, acs_user_id: str, resource: str, now: datetime) -> IdentityRecord:
        """The mapping after this one is replaced by an identity of another ACS resource (this one kept as previous)."""
        return IdentityRecord(
            self.user_key,
            acs_user_id,
            now,
            now,
            None,
            acs_resource=resource,
            previous_acs_user_id=self.acs_user_id,
            previous_acs_resource=self.acs_resource,
            replaced_at=now,
        )

    def belongs_to(self, resource: str) -> bool:
        """Whether this identity may be used with ``resource`` (unknown: yes, and ACS will say)."""
        return self.acs_resource is None or self.acs_resource == resource

    @property
    def row_key(self) -> str:
        """The digest that names this user in storage and in sweep work items."""
        return user_digest(self.user_key)

    def revoked_after_last_issue(self, margin: timedelta) -> bool:
        """True if every token was issued at least ``margin`` before the last revocation began.

        ``margin`` covers an issue still in flight when it was recorded: LastIssuedAt is written
        beside the ACS call, so a token can be minted a little after its LastIssuedAt.
        """
        if self.last_revoked_at is None:
            return False
        return self.last_issued_at is None or self.last_revoked_at >= self.last_issued_at + margin

    def created_after(self, moment: datetime) -> bool:
        """True if the identity was created too long after ``moment`` to hold a token issued before it."""
        return self.created_at >= moment + ISSUE_IN_FLIGHT_MARGIN

    def revoked_since(self, moment: datetime) -> bool:
        """True if a revocation began at or after ``moment``: every token issued before it is dead."""
        return self.last_revoked_at is not None and self.last_revoked_at >= moment

    def has_unrevoked_tokens_since(self, moment: datetime) -> bool:
        """True if a token was issued at or after ``moment`` and not revoked since."""
        if self.last_issued_at is None or self.last_issued_at < moment:
            return False
        return self.last_revoked_at is None or self.last_revoked_at < self.last_issued_at


class IdentityConflict(Exception):
    """An insert lost a race: another request mapped this user first."""

    def __init__(self, existing: IdentityRecord) -> None:
        super().__init__("identity already mapped")
        self.existing = existing


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit trail: what happened to whose identity, why, when. Never a token or a raw user id."""

    #: the user's keyed reference (UserReferences, 32 hex digits): erasing the user leaves nothing that names them
    user_ref: str
    #: identity_created | identity_deleted | tokens_revoked
    event: str
    #: who or what did it: user | operator | retention | session | campaign | orphan | replaced
    source: str
    reason: str
    at: datetime
    acs_user_id: str = ""


Action = Literal["revoke", "delete"]
ACTIONS: tuple[Action, ...] = ("revoke", "delete")


@dataclass(frozen=True)
class RevocationRequest:
    """A durable request to revoke a user's tokens or delete their identity, done by the sweep if not at once."""

    row_key: str
    action: Action
    user_key: str
    #: the ACS id when known at request time (always for deletes: the mapping may be gone by then)
    acs_user_id: str | None
    reason: str
    source: str
    requested_at: datetime
    not_before: datetime
    attempts: int
    etag: str | None


def request_row_key(action: Action, user_key: str) -> str:
    """One pending request per action and user: a repeated request merges into the pending one."""
    return f"{action}-{user_digest(user_key)}"
