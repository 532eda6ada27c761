"""The token API's logic: one caller, one ACS identity, kept in the identity map.

Cost of a warm ``issue`` (the caller's ACS id already known to this worker):
one ACS call plus one store write (``record_issued``), made concurrently. The worker keeps a small
cache of user -> ACS id; it can go stale only when an identity is deleted
elsewhere, and ACS then answers 404, which evicts the entry and falls back to
the store. ACS stays the source of truth for whether an id is alive.

Get-or-create is race-safe: the store's insert is create-if-absent, so of two
concurrent first calls one wins; the loser deletes the ACS identity it just
created (the orphan) and uses the winner's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from shared.acs import AcsIdentityService, IssuedToken
from shared.auth import Caller
from shared.errors import NotFoundError, ServiceError, ThrottledError, UnavailableError
from shared.identity_store import IdentityConflict, IdentityStore
from shared.policy import TokenRequest
from shared.ratelimit import PerUserRateLimiter
from shared.revocation.ledger import RevocationLedger, RevocationRequest

logger = logging.getLogger(__name__)

CACHE_SIZE = 10_000


@dataclass(frozen=True)
class TokenGrant:
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


def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second (what JavaScript's Date parses everywhere)."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class TokenService:
    def __init__(
        self,
        acs: AcsIdentityService,
        store: IdentityStore,
        limiter: PerUserRateLimiter,
        clock: Callable[[], datetime] = utc_now,
        ledger: RevocationLedger | None = None,
    ) -> None:
        self._acs = acs
        self._store = store
        self._limiter = limiter
        #: where revokes and deletes are recorded first, so a failed call is finished by the sweep
        self._ledger = ledger
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

    async def _known_acs_id(self, user_key: str) -> str | None:
        cached = self._known.get(user_key)
        if cached is not None:
            self._known.move_to_end(user_key)
            return cached
        record = await self._store.get(user_key)
        if record is None:
            return None
        self._remember(user_key, record.acs_user_id)
        return record.acs_user_id

    # ------------------------------------------------------------------ operations

    async def issue(self, caller: Caller, request: TokenRequest) -> TokenGrant:
        """Get-or-create the caller's ACS identity and issue a token."""
        self._limiter.acquire(caller.key)
        grant = await self._issue_for_existing(caller.key, request)
        return grant if grant is not None else await self._create_and_issue(caller.key, request)

    async def refresh(self, caller: Caller, request: TokenRequest) -> TokenGrant:
        """A new token for the caller's existing identity; never creates one."""
        self._limiter.acquire(caller.key)
        grant = await self._issue_for_existing(caller.key, request)
        if grant is None:
            raise NotFoundError("This user has no ACS identity yet; call POST /api/token first.")
        return grant

    async def revoke(self, caller: Caller) -> Completion:
        """Revoke every token of the caller's identity, recorded first so nothing is lost."""
        acs_user_id = await self._known_acs_id(caller.key)
        if acs_user_id is None:
            return Completion.NOTHING_TO_DO
        request = None
        if self._ledger is not None:
            request = await self._ledger.record(
                "revoke", caller.key, reason="user signed out everywhere", source="user", now=self._clock(), acs_user_id=acs_user_id
            )
        try:
            await self._acs.revoke_tokens(acs_user_id)
        except NotFoundError:
            await self._drop_stale_mapping(caller.key, acs_user_id)
            await self._complete(request)
            return Completion.NOTHING_TO_DO
        except (ThrottledError, UnavailableError):
            if request is None:
                raise
            return Completion.PENDING
        await self._store.record_revoked(caller.key, self._clock())
        await self._complete(request)
        return Completion.DONE

    async def delete(self, caller: Caller) -> Completion:
        """Delete the caller's ACS identity and its mapping (idempotent).

        The mapping goes first (the user is disconnected at once); the ACS identity follows,
        and if ACS cannot take it now the recorded request lets the sweep finish it.
        """
        self._forget(caller.key)
        record = await self._store.get(caller.key)
        if record is None:
            return Completion.NOTHING_TO_DO
        request = None
        if self._ledger is not None:
            request = await self._ledger.record(
                "delete", caller.key, reason="user deleted identity", source="user", now=self._clock(), acs_user_id=record.acs_user_id
            )
            await self._store.delete(caller.key)
            self._forget(caller.key)  # again: a concurrent request may have cached it meanwhile
        try:
            await self._acs.delete_identity(record.acs_user_id)
        except NotFoundError:
            pass  # already gone in ACS
        except (ThrottledError, UnavailableError):
            if request is None:
                raise
            return Completion.PENDING
        if request is None:
            await self._store.delete(caller.key)
            self._forget(caller.key)
        await self._complete(request)
        return Completion.DONE

    async def _complete(self, request: RevocationRequest | None) -> None:
        if request is not None and self._ledger is not None:
            await self._ledger.complete(request)

    async def exchange_teams_token(self, caller: Caller, teams_token: str, client_id: str, user_object_id: str) -> IssuedToken:
        self._limiter.acquire(caller.key)
        return await self._acs.exchange_teams_token(teams_token, client_id, user_object_id)

    # ------------------------------------------------------------------ internals

    async def _issue_for_existing(self, user_key: str, request: TokenRequest) -> TokenGrant | None:
        """A token for the user's mapped identity; None if there is none (or ACS no longer knows it)."""
        acs_user_id = await self._known_acs_id(user_key)
        if acs_user_id is None:
            return None
        # The ACS call and the store write run side by side: latency is the slower of the two,
        # not their sum. If ACS then fails, LastIssuedAt is merely a little early, which only
        # makes the revocation sweep look at this user once more.
        issue = asyncio.ensure_future(self._acs.issue_token(acs_user_id, request.scopes, request.expires_in_minutes))
        record = asyncio.ensure_future(self._store.record_issued(user_key, self._clock()))
        try:
            await asyncio.gather(issue, record)
        except NotFoundError:
            await asyncio.gather(record, return_exceptions=True)
            await self._drop_stale_mapping(user_key, acs_user_id)
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
            await self._store.insert(user_key, acs_user_id, now)
        except IdentityConflict as conflict:
            # Another request for this user won the race: keep its identity, drop ours.
            await self._delete_orphan(acs_user_id)
            winner = conflict.existing.acs_user_id
            self._remember(user_key, winner)
            token = await self._acs.issue_token(winner, request.scopes, request.expires_in_minutes)
            await self._store.record_issued(user_key, self._clock())
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

    async def _drop_stale_mapping(self, user_key: str, acs_user_id: str) -> None:
        self._forget(user_key)
        record = await self._store.get(user_key)
        if record is not None and record.acs_user_id == acs_user_id:
            await self._store.delete(user_key)
