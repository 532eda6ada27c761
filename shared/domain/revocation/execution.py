"""Carrying out a revocation request: the one flow the token service and the sweep share.

A request is recorded in the ledger before anything else happens, and completed only
after ACS has answered. Whoever carries it out (the user's own ``POST /api/token/revoke``
or a sweep run that finds it later) goes through :meth:`RevocationExecutor.carry_out`:
the ACS call, the identity map's note of it, then completing the request. Throttling
and outages propagate before the request is completed, so it stays for the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.domain.errors import ForeignIdentityError, NotFoundError
from shared.domain.journal import Journal
from shared.domain.models import RevocationRequest
from shared.domain.ports import AcsIdentityService, IdentityMap, RevocationLedger
from shared.domain.revocation.pacing import Pacer, Unpaced
from shared.domain.revocation.work import Outcome


class RevocationExecutor:
    """Revokes and deletes ACS identities, paced, and keeps the identity map and the ledger in step."""

    def __init__(
        self,
        acs: AcsIdentityService,
        identities: IdentityMap,
        ledger: RevocationLedger,
        clock: Callable[[], datetime],
        *,
        revoke_pacer: Pacer | None = None,
        delete_pacer: Pacer | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._acs = acs
        #: the audit trail and metrics: every revocation and deletion carried out is told there
        self.journal = journal or Journal()
        self._identities = identities
        self._ledger = ledger
        self._clock = clock
        self.revoke_pacer: Pacer = revoke_pacer or Unpaced()
        self.delete_pacer: Pacer = delete_pacer or Unpaced()

    async def revoke(self, acs_user_id: str) -> Outcome:
        """Revoke every token of an identity; ALREADY_GONE when ACS no longer knows it, FOREIGN for another resource's."""
        await self.revoke_pacer.acquire()
        try:
            await self._acs.revoke_tokens(acs_user_id)
        except NotFoundError:
            return Outcome.ALREADY_GONE
        except ForeignIdentityError:
            return Outcome.FOREIGN
        return Outcome.REVOKED

    async def delete(self, acs_user_id: str) -> Outcome:
        """Delete an identity; ALREADY_GONE when ACS no longer knows it, FOREIGN for another resource's."""
        await self.delete_pacer.acquire()
        try:
            await self._acs.delete_identity(acs_user_id)
        except NotFoundError:
            return Outcome.ALREADY_GONE
        except ForeignIdentityError:
            return Outcome.FOREIGN
        return Outcome.DELETED

    async def carry_out(self, request: RevocationRequest, *, mapped_acs_user_id: str | None) -> Outcome:
        """Do what ``request`` asks, then complete it.

        ``mapped_acs_user_id`` is the identity the user's mapping points at now (None when
        there is none, or the caller already removed it). The map is only touched when it
        still points at the identity the request is about: a user who was given a new
        identity meanwhile keeps it.
        """
        acs_user_id = request.acs_user_id or mapped_acs_user_id
        mapped = acs_user_id is not None and acs_user_id == mapped_acs_user_id
        if acs_user_id is None:
            outcome = Outcome.ALREADY_GONE  # the user never had an identity, or it was deleted
        elif request.action == "revoke":
            started = self._clock()  # recorded as LastRevokedAt: ACS revoked at this moment or later
            outcome = await self.revoke(acs_user_id)
            if outcome is Outcome.REVOKED:
                await self.journal.tokens_revoked(request.user_key, acs_user_id, request.source, request.reason)
            if mapped and outcome is Outcome.REVOKED:
                await self._identities.record_revoked(request.user_key, started)
            elif mapped and outcome is Outcome.ALREADY_GONE:
                await self.drop_stale_mapping(request.user_key, acs_user_id)
            # FOREIGN: the mapping stays; the user's next token request replaces it with one of this resource
        else:
            outcome = await self.delete(acs_user_id)
            if outcome is Outcome.DELETED:
                await self.journal.identity_deleted(request.user_key, acs_user_id, request.source, request.reason)
            if mapped:
                await self._identities.delete(request.user_key, acs_user_id=acs_user_id)
        # Only now, after ACS answered: a crash before this line repeats the (idempotent) call.
        await self._ledger.complete(request)
        return outcome

    async def drop_stale_mapping(self, user_key: str, acs_user_id: str) -> None:
        """Remove a mapping to an identity ACS no longer knows, unless it points elsewhere by now."""
        record = await self._identities.get(user_key)
        if record is not None and record.acs_user_id == acs_user_id:
            await self._identities.delete(user_key, etag=record.etag, acs_user_id=acs_user_id)
