"""What the service did, told once: to the audit trail (durable, per user) and to the metrics.

Every place that creates or deletes an identity or revokes tokens (the token service, the sweep's
requests, policies and campaigns) calls the journal, so the trail and the counters cannot drift
apart. The trail names users only by their keyed reference (UserReferences, 32 hex digits): an
erased user leaves nothing behind that names them, yet an operator who knows the user id can find
the history by hashing it the same way.

An audit write that fails (storage down) is logged and dropped: the operation it describes has
already happened in ACS and must not be undone or failed because its record could not be written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.domain.clock import utc_now
from shared.domain.errors import ServiceError
from shared.domain.metrics import IDENTITIES_CREATED, IDENTITIES_DELETED, REVOCATIONS, TOKENS_ISSUED, Metrics, NoMetrics
from shared.domain.models import AuditEntry
from shared.domain.ports import AuditLog
from shared.domain.references import UserReferences

logger = logging.getLogger(__name__)

#: length of the user references in the trail (128 bits: no collisions between users in practice)
AUDIT_REF_LENGTH = 32


class Journal:
    """One call per event; ``audit`` None means no trail (metrics only)."""

    def __init__(
        self,
        audit: AuditLog | None = None,
        references: UserReferences | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._audit = audit if references is not None else None
        self._references = references
        self.metrics: Metrics = metrics or NoMetrics()
        self._clock = clock

    def token_issued(self, kind: str) -> None:
        self.metrics.add(TOKENS_ISSUED, attributes={"kind": kind})

    async def identity_created(self, user_key: str, acs_user_id: str, source: str, reason: str = "") -> None:
        self.metrics.add(IDENTITIES_CREATED, attributes={"source": source})
        await self._append(user_key, "identity_created", source, reason, acs_user_id)

    async def identity_deleted(self, user_key: str, acs_user_id: str, source: str, reason: str = "") -> None:
        self.metrics.add(IDENTITIES_DELETED, attributes={"source": source})
        await self._append(user_key, "identity_deleted", source, reason, acs_user_id)

    async def tokens_revoked(self, user_key: str, acs_user_id: str, source: str, reason: str = "") -> None:
        self.metrics.add(REVOCATIONS, attributes={"source": source})
        await self._append(user_key, "tokens_revoked", source, reason, acs_user_id)

    async def _append(self, user_key: str, event: str, source: str, reason: str, acs_user_id: str) -> None:
        if self._audit is None or self._references is None:
            return
        try:
            user_ref = await self._references.ref(user_key, length=AUDIT_REF_LENGTH)
            await self._audit.append(AuditEntry(user_ref, event, source, reason[:200], self._clock(), acs_user_id))
        except ServiceError as error:
            logger.warning("audit entry %s/%s could not be written (%s)", event, source, error.code)
