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

from shared.domain.caller import Caller
from shared.domain.clock import format_utc, utc_now
from shared.domain.errors import NotFoundError, ServiceError, ThrottledError, UnavailableError
from shared.domain.models import IdentityConflict, IssuedToken
from shared.domain.policy import TokenRequest
from shared.domain.ports import AcsIdentityService, IdentityMap, RevocationLedger
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.revocation.execution import RevocationExecutor
from shared.domain.revocation.work import Outcome

logger = logging.getLogger(__name__)

CACHE_SIZE = 10_000


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


class TokenService:
    """Issue, refresh, revoke, delete and Teams exchange for one authenticated caller at a time."""

    def __init__(
        self,
        acs: AcsIdentityService,
        identities: IdentityMap,
        ledger: RevocationLedger,
        limiter: PerUserRateLimiter,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._acs = acs
        self._identities = identities
        #: where revokes and deletes are recorded first, so a failed call is finished by the sweep
        self._ledger = ledger
        self._executor = RevocationExecutor(acs, identities, ledger, clock)
        self._limiter = limiter
        self._clock = clock
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
        grant = await self._issue_for_existing(caller.key, request)
        return grant if grant is not None else await self._create_and_issue(caller.key, request)

    async def refresh(self, caller: Caller, request: TokenRequest) -> TokenGrant:
        """A new token for the caller's existing identity; never creates one (NotFoundError)."""
        self._limiter.acquire(caller.key)
        grant = await self._issue_for_existing(caller.key, request)
        if grant is None:
            raise NotFoundError("This user has no ACS identity yet.")
        return grant

    async def revoke(self, caller: Caller) -> Completion:
        """Revoke every token of the caller's identity, recorded first so nothing is lost.

        The identity comes from the map, not the worker's cache: another worker may have given the
        user a new identity, and a revoke must never reach a stale one (one read on a rare call).
        """
        record = await self._identities.get(caller.key)
        if record is None:
            self._forget(caller.key)
            return Completion.NOTHING_TO_DO
        acs_user_id = record.acs_user_id
        self._remember(caller.key, acs_user_id)
        request = await self._ledger.record(
            "revoke", caller.key, reason="user signed out everywhere", source="user", now=self._clock(), acs_user_id=acs_user_id
        )
        try:
            outcome = await self._executor.carry_out(request, mapped_acs_user_id=acs_user_id)
        except (ThrottledError, UnavailableError):
            return Completion.PENDING
        if outcome is Outcome.ALREADY_GONE:
            self._forget(caller.key)
            return Completion.NOTHING_TO_DO
        return Completion.DONE

    async def delete(self, caller: Caller) -> Completion:
        """Delete the caller's ACS identity and its mapping (idempotent).

        The mapping goes first (the user is disconnected at once); the ACS identity follows,
        and if ACS cannot take it now the recorded request lets the sweep finish it.
        """
        self._forget(caller.key)
        record = await self._identities.get(caller.key)
        if record is None:
            return Completion.NOTHING_TO_DO
        request = await self._ledger.record(
            "delete", caller.key, reason="user deleted identity", source="user", now=self._clock(), acs_user_id=record.acs_user_id
        )
        await self._identities.delete(caller.key)
        self._forget(caller.key)  # again: a concurrent request may have cached it meanwhile
        try:
            await self._executor.carry_out(request, mapped_acs_user_id=None)
        except (ThrottledError, UnavailableError):
            return Completion.PENDING
        return Completion.DONE

    async def exchange_teams_token(self, caller: Caller, teams_token: str, client_id: str, user_object_id: str) -> IssuedToken:
        """A Teams user's Entra ID token for an ACS token (the caller's own rate limit applies)."""
        self._limiter.acquire(caller.key)
        return await self._acs.exchange_teams_token(teams_token, client_id, user_object_id)

    # ------------------------------------------------------------------ internals

    async def _issue_for_existing(self, user_key: str, request: TokenRequest) -> TokenGrant | None:
        """A token for the user's mapped identity; None if there is none (or ACS no longer knows it).

        The worker's cache is tried first; when ACS no longer knows the cached identity, the map
        decides: another worker may have deleted it and mapped the user to a new one meanwhile.
        """
        cached = self._known.get(user_key)
        if cached is not None:
            self._known.move_to_end(user_key)
            grant = await self._issue_to(user_key, cached, request)
            if grant is not None:
                return grant
            self._forget(user_key)
        record = await self._identities.get(user_key)
        if record is None:
            return None
        grant = None if record.acs_user_id == cached else await self._issue_to(user_key, record.acs_user_id, request)
        if grant is None:  # ACS does not know the mapped identity: drop the mapping, unless it changed meanwhile
            await self._identities.delete(user_key, etag=record.etag)
            return None
        self._remember(user_key, record.acs_user_id)
        return grant

    async def _issue_to(self, user_key: str, acs_user_id: str, request: TokenRequest) -> TokenGrant | None:
        """A token for ``acs_user_id`` (noting the issue in the map); None when ACS no longer knows it."""
        # The ACS call and the store write run side by side: latency is the slower of the two,
        # not their sum. If ACS then fails, LastIssuedAt is merely a little early, which only
        # makes the revocation sweep look at this user once more.
        issue = asyncio.ensure_future(self._acs.issue_token(acs_user_id, request.scopes, request.expires_in_minutes))
        record = asyncio.ensure_future(self._identities.record_issued(user_key, self._clock()))
        try:
            await asyncio.gather(issue, record)
        except NotFoundError:
            await asyncio.gather(record, return_exceptions=True)
            return None
        except BaseException:
            for task in (issue, record):
                task.cancel()
            await asyncio.gather(issue, record, return_exceptions=True)
            raise
        return TokenGrant(acs_user_id, issue.result(), request.scopes)

    async def _create_and_issue(self, user_key: str, request: TokenRequest) -> TokenGrant:
        acs_user_id, token = await self._acs.create_identity_with_token(request.scopes, request.expires_in_minutes)
        now = self._clock()
        try:
            await self._identities.insert(user_key, acs_user_id, now)
        except IdentityConflict as conflict:
            # Another request for this user won the race: keep its identity, drop ours.
            await self._delete_orphan(acs_user_id)
            winner = conflict.existing.acs_user_id
            self._remember(user_key, winner)
            token = await self._acs.issue_token(winner, request.scopes, request.expires_in_minutes)
            await self._identities.record_issued(user_key, self._clock())
            return TokenGrant(winner, token, request.scopes)
        except BaseException:
            # The mapping was not written: do not leave an identity nobody can reach.
            await self._delete_orphan(acs_user_id)
            raise
        self._remember(user_key, acs_user_id)
        return TokenGrant(acs_user_id, token, request.scopes)

    async def _delete_orphan(self, acs_user_id: str) -> None:
        try:
            await self._acs.delete_identity(acs_user_id)
        except ServiceError as error:
            logger.warning("could not delete orphan ACS identity (%s); it holds no mapping", error.code)
