"""The token API's logic: one caller, one ACS identity, kept in the identity map.

Cost of a warm ``issue`` (the caller's ACS id already known to this worker):
one ACS call plus one store write (``record_issued``), made concurrently. The worker keeps a small
cache of user -> ACS id; it goes stale when another worker deletes or replaces the identity, and
ACS then answers 404, which evicts the entry and falls back to the map (which may name the user's
new identity). ACS stays the source of truth for whether an id is alive. Revokes never use the
cache: they read the map, so they reach the user's current identity whichever worker serves them.

Get-or-create is race-safe: the store's insert is create-if-absent, so of two
concurrent first calls one wins; the loser deletes the ACS identity it just
created (the orphan) and uses the winner's.

Revoke and delete are recorded in the revocation ledger first and carried out by
the same :class:`~shared.domain.revocation.execution.RevocationExecutor` the sweep
uses; if ACS is throttling or down, the answer is "pending" and the sweep finishes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from shared.domain.caller import Caller, orphan_key
from shared.domain.clock import format_utc, utc_now
from shared.domain.errors import ForeignIdentityError, NotFoundError, ServiceError, ThrottledError, UnavailableError
from shared.domain.journal import Journal
from shared.domain.models import ISSUE_IN_FLIGHT_MARGIN, IdentityConflict, IdentityRecord, IssuedToken
from shared.domain.policy import TokenRequest
from shared.domain.ports import AcsIdentityService, IdentityMap, RevocationLedger
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.revocation.budget import FleetBudget
from shared.domain.revocation.execution import RevocationExecutor
from shared.domain.revocation.work import Outcome

logger = logging.getLogger(__name__)

CACHE_SIZE = 10_000
#: a mapping write that keeps meeting other resources' rows (or races) gives up after this many tries
MAX_MAPPING_ATTEMPTS = 3


@dataclass(frozen=True)
class TokenGrant:
    """What ``POST /api/token`` and ``/refresh`` answer."""

    communication_user_id: str
    token: IssuedToken
    scopes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "communicationUserId": self.communication_user_id,
            "token": self.token.token,
            "expiresOn": format_utc(self.token.expires_on),
            "scopes": list(self.scopes),
        }


class Completion(str, Enum):
    """What became of a revoke or delete."""

    DONE = "done"
    NOTHING_TO_DO = "nothing_to_do"  # the caller has no identity
    PENDING = "pending"  # ACS is throttling or down: recorded, and the sweep will finish it


class _Missing(Enum):
    """Why the mapped identity could not issue a token."""

    GONE = "gone"  # ACS no longer knows it (404)
    FOREIGN = "foreign"  # it belongs to another ACS resource (401 IdentityNotOwned)


class TokenService:
    """Issue, refresh, revoke, delete and Teams exchange for one authenticated caller at a time."""

    def __init__(
        self,
        acs: AcsIdentityService,
        identities: IdentityMap,
        ledger: RevocationLedger,
        limiter: PerUserRateLimiter,
        clock: Callable[[], datetime] = utc_now,
        *,
        resource: str = "",
        revoke_limiter: PerUserRateLimiter | None = None,
        journal: Journal | None = None,
        issue_budget: FleetBudget | None = None,
        create_budget: FleetBudget | None = None,
    ) -> None:
        self._acs = acs
        self._identities = identities
        #: where revokes and deletes are recorded first, so a failed call is finished by the sweep
        self._ledger = ledger
        #: the audit trail and metrics
        self._journal = journal or Journal()
        self._executor = RevocationExecutor(acs, identities, ledger, clock, journal=self._journal)
        self._limiter = limiter
        #: revokes and deletes per user: each can cost an ACS call from the resource's 500 per 30 s
        self._revoke_limiter = revoke_limiter or PerUserRateLimiter(0)
        self._clock = clock
        #: the fleet's shares of ACS's token-issue and identity-create limits (TOKEN_FLEET_RATE_PER_30S; off: None)
        self._issue_budget = issue_budget
        self._create_budget = create_budget
        #: the ACS resource ``acs`` talks to (AcsSettings.resource): mappings of another one are never used
        self._resource = resource
        self._known: OrderedDict[str, str] = OrderedDict()  # user key -> ACS id (LRU)

    # ------------------------------------------------------------------ cache

    def _remember(self, user_key: str, acs_user_id: str) -> None:
        self._known[user_key] = acs_user_id
        self._known.move_to_end(user_key)
        if len(self._known) > CACHE_SIZE:
            self._known.popitem(last=False)

    def _forget(self, user_key: str) -> None:
        self._known.pop(user_key, None)

    # ------------------------------------------------------------------ operations

    async def issue(self, caller: Caller, request: TokenRequest) -> TokenGrant:
        """Get-or-create the caller's ACS identity and issue a token."""
        self._limiter.acquire(caller.key)
        grant, foreign = await self._issue_for_existing(caller.key, request)
        if grant is None:
            grant = await self._create_and_issue(caller.key, request, replacing=foreign)
        self._journal.token_issued("issue")
        return grant

    async def refresh(self, caller: Caller, request: TokenRequest) -> TokenGrant:
        """A new token for the caller's existing identity; never creates one (NotFoundError).

        A mapping of another ACS resource counts as none: the caller's next ``issue`` replaces it.
        """
        self._limiter.acquire(caller.key)
        grant, _ = await self._issue_for_existing(caller.key, request)
        if grant is None:
            raise NotFoundError("This user has no ACS identity yet.")
        self._journal.token_issued("refresh")
        return grant

    async def revoke(self, caller: Caller) -> Completion:
        """Revoke every token of the caller's identity, recorded first so nothing is lost.

        The identity comes from the map, not the worker's cache: another worker may have given the
        user a new identity, and a revoke must never reach a stale one (one read on a rare call).
        An identity of another ACS resource cannot be revoked from here: nothing to do. When no
        token was issued since the last revocation, every token is dead already: no ACS call.
        """
        self._revoke_limiter.acquire(caller.key)
        record = await self._identities.get(caller.key)
        if record is None or not record.belongs_to(self._resource):
            self._forget(caller.key)
            return Completion.NOTHING_TO_DO
        if record.revoked_after_last_issue(ISSUE_IN_FLIGHT_MARGIN):
            return Completion.DONE
        acs_user_id = record.acs_user_id
        self._remember(caller.key, acs_user_id)
        request = await self._ledger.record(
            "revoke", caller.key, reason="user signed out everywhere", source="user", now=self._clock(), acs_user_id=acs_user_id
        )
        try:
            outcome = await self._executor.carry_out(request, mapped_acs_user_id=acs_user_id)
        except (ThrottledError, UnavailableError):
            return Completion.PENDING
        if outcome in (Outcome.ALREADY_GONE, Outcome.FOREIGN):
            self._forget(caller.key)
            return Completion.NOTHING_TO_DO
        return Completion.DONE

    async def delete(self, caller: Caller) -> Completion:
        """Delete the caller's ACS identity and its mapping (idempotent).

        The mapping goes first (the user is disconnected at once); the ACS identity follows,
        and if ACS cannot take it now the recorded request lets the sweep finish it. An identity
        of another ACS resource cannot be deleted from here: only the mapping goes.
        """
        self._revoke_limiter.acquire(caller.key)
        self._forget(caller.key)
        record = await self._identities.get(caller.key)
        if record is None:
            return Completion.NOTHING_TO_DO
        if not record.belongs_to(self._resource):
            await self._identities.delete(caller.key, acs_user_id=record.acs_user_id)
            logger.warning("deleted a mapping to another ACS resource's identity; delete that identity in its own resource")
            return Completion.DONE
        request = await self._ledger.record(
            "delete", caller.key, reason="user deleted identity", source="user", now=self._clock(), acs_user_id=record.acs_user_id
        )
        await self._identities.delete(caller.key, acs_user_id=record.acs_user_id)
        self._forget(caller.key)  # again: a concurrent request may have cached it meanwhile
        try:
            await self._executor.carry_out(request, mapped_acs_user_id=None)
        except (ThrottledError, UnavailableError):
            return Completion.PENDING
        return Completion.DONE

    async def exchange_teams_token(self, caller: Caller, teams_token: str, client_id: str, user_object_id: str) -> IssuedToken:
        """A Teams user's Entra ID token for an ACS token (the caller's own rate limit applies)."""
        self._limiter.acquire(caller.key)
        token = await self._acs.exchange_teams_token(teams_token, client_id, user_object_id)
        self._journal.token_issued("teams")
        return token

    # ------------------------------------------------------------------ internals

    async def _issue_for_existing(self, user_key: str, request: TokenRequest) -> tuple[TokenGrant | None, IdentityRecord | None]:
        """A token for the user's mapped identity, or None and, if it is another resource's, its mapping.

        The worker's cache is tried first; when ACS no longer knows the cached identity, the map
        decides: another worker may have deleted it and mapped the user to a new one meanwhile.
        """
        cached = self._known.get(user_key)
        cached_failure: _Missing | None = None
        if cached is not None:
            self._known.move_to_end(user_key)
            attempt = await self._issue_to(user_key, cached, request)
            if isinstance(attempt, TokenGrant):
                return attempt, None
            cached_failure = attempt
            self._forget(user_key)
        record = await self._identities.get(user_key)
        if record is None:
            return None, None
        if not record.belongs_to(self._resource):
            return None, record  # another ACS resource's identity: never used here
        if cached_failure is not None and record.acs_user_id == cached:
            attempt = cached_failure  # the map agrees with the cache: no second ACS call
        else:
            attempt = await self._issue_to(user_key, record.acs_user_id, request)
        if attempt is _Missing.FOREIGN:
            return None, record  # recorded before resources were, and ACS says it is another's
        if attempt is _Missing.GONE:
            # Re-read: our own LastIssuedAt write changed the row's ETag. Dropped only if it still points there.
            await self._executor.drop_stale_mapping(user_key, record.acs_user_id)
            return None, None
        self._remember(user_key, record.acs_user_id)
        return attempt, None

    async def _issue_to(self, user_key: str, acs_user_id: str, request: TokenRequest) -> TokenGrant | _Missing:
        """A token for ``acs_user_id`` (noting the issue in the map), or why ACS would not issue one."""
        if self._issue_budget is not None:
            await self._issue_budget.try_acquire()  # the fleet's share is spent: 429 now, ACS is not asked
        # The ACS call and the store write run side by side: latency is the slower of the two,
        # not their sum. If ACS then fails, LastIssuedAt is merely a little early, which only
        # makes the revocation sweep look at this user once more.
        issue = asyncio.ensure_future(self._acs.issue_token(acs_user_id, request.scopes, request.expires_in_minutes))
        record = asyncio.ensure_future(self._identities.record_issued(user_key, self._clock()))
        try:
            await asyncio.gather(issue, record)
        except (NotFoundError, ForeignIdentityError) as error:
            await asyncio.gather(record, return_exceptions=True)
            return _Missing.GONE if isinstance(error, NotFoundError) else _Missing.FOREIGN
        except BaseException:
            for task in (issue, record):
                task.cancel()
            await asyncio.gather(issue, record, return_exceptions=True)
            raise
        return TokenGrant(acs_user_id, issue.result(), request.scopes)

    async def _create_and_issue(self, user_key: str, request: TokenRequest, *, replacing: IdentityRecord | None) -> TokenGrant:
        """A new identity in this resource, mapped create-if-absent (or in place of another resource's)."""
        if self._create_budget is not None:
            await self._create_budget.try_acquire()
        try:
            acs_user_id, token = await self._acs.create_identity_with_token(request.scopes, request.expires_in_minutes)
        except UnavailableError as error:
            # A lost answer (a timeout) leaves it open whether ACS created the identity: if it did, it is an
            # orphan nobody knows the id of. Logged so an operator can count them (README, "Orphan identities").
            logger.warning("creating an ACS identity failed (%s); if ACS created it anyway it has no mapping", error.code)
            raise
        now = self._clock()
        try:
            winner = await self._map(user_key, acs_user_id, now, replacing)
            if winner is not None:
                # Another request for this user won the race: keep its identity, drop ours.
                grant = await self._issue_to(user_key, winner.acs_user_id, request)
                if isinstance(grant, TokenGrant):
                    await self._delete_orphan(acs_user_id)
                    self._remember(user_key, winner.acs_user_id)
                    return grant
                # ... unless ACS no longer knows the winner's identity: drop that mapping and map ours.
                await self._executor.drop_stale_mapping(user_key, winner.acs_user_id)
                if await self._map(user_key, acs_user_id, now, None) is not None:
                    raise UnavailableError("The identity map kept changing under this request; retry.", retry_after=1)
        except BaseException:
            # The mapping was not written: do not leave an identity nobody can reach.
            await self._delete_orphan(acs_user_id)
            raise
        self._remember(user_key, acs_user_id)
        if replacing is None:
            await self._journal.identity_created(user_key, acs_user_id, "user", "first token")
        else:
            await self._journal.identity_created(
                user_key, acs_user_id, "replaced", "the mapped identity is another ACS resource's"
            )
        return TokenGrant(acs_user_id, token, request.scopes)

    async def _map(
        self, user_key: str, acs_user_id: str, now: datetime, replacing: IdentityRecord | None
    ) -> IdentityRecord | None:
        """Write the mapping; None when it is ours, else the mapping of this resource that won a race."""
        for _ in range(MAX_MAPPING_ATTEMPTS):
            try:
                if replacing is None:
                    await self._identities.insert(user_key, acs_user_id, now, resource=self._resource)
                else:
                    await self._identities.replace(replacing, acs_user_id, now, resource=self._resource)
                    logger.info("replaced a mapping to another ACS resource's identity (kept as the previous mapping)")
                return None
            except IdentityConflict as conflict:
                existing = conflict.existing
                if existing.acs_user_id == acs_user_id:
                    return None  # our own write, retried by the storage client after a lost answer
                if replacing is not None and existing.acs_user_id == replacing.acs_user_id:
                    replacing = existing  # the same old mapping, touched meanwhile (LastIssuedAt): replace it as it is now
                elif existing.belongs_to(self._resource):
                    return existing  # another request for this user mapped it first
                else:
                    replacing = existing  # another resource's mapping is in the way: replace that one
        raise UnavailableError("The identity map kept changing under this request; retry.", retry_after=1)

    async def _delete_orphan(self, acs_user_id: str) -> None:
        """Delete an identity no mapping points at; if ACS cannot now, record it so the sweep does."""
        try:
            await self._acs.delete_identity(acs_user_id)
            await self._journal.identity_deleted(orphan_key(acs_user_id), acs_user_id, "orphan", "its mapping was not written")
            return
        except NotFoundError:
            return
        except ServiceError as error:
            code = error.code
        try:
            await self._ledger.record(
                "delete",
                orphan_key(acs_user_id),
                reason="orphan: its mapping was not written",
                source="orphan",
                now=self._clock(),
                acs_user_id=acs_user_id,
            )
            logger.warning("could not delete an orphan ACS identity now (%s); recorded for the revocation sweep", code)
        except ServiceError:
            # ACS and storage both failing: the one place an orphan can survive. The id is logged (it names
            # no user) so an operator can delete it: see the README, "Orphan identities".
            logger.error("orphan ACS identity %s could not be deleted nor recorded (%s); delete it by hand", acs_user_id, code)
