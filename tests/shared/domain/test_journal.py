"""The journal: every identity event reaches the audit trail under a keyed reference, and a lost write fails nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.caller import Caller
from shared.domain.errors import UnavailableError
from shared.domain.journal import AUDIT_REF_LENGTH, Journal
from shared.domain.policy import TokenRequest
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.references import UserReferences
from shared.domain.token_service import Completion, TokenService
from tests.support.fakes import FakeAcs, FakeAudit, FakeIdentityMap, FakeLedger

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ALICE = Caller("dev", "alice@example.com")
REQUEST = TokenRequest(scopes=("voip",), expires_in_minutes=60)


class Counting:
    """A Metrics that remembers what it was told."""

    def __init__(self) -> None:
        self.added: list[tuple[str, dict[str, str]]] = []

    def add(self, name, value=1, attributes=None):
        self.added.append((name, dict(attributes or {})))

    def set(self, name, value, attributes=None):
        return None

    def record(self, name, value, attributes=None):
        return None


@pytest.fixture
def journaled():
    audit, metrics = FakeAudit(), Counting()
    journal = Journal(audit, UserReferences(None, "k" * 40), metrics, clock=lambda: NOW)
    service = TokenService(FakeAcs(), FakeIdentityMap(), FakeLedger(), PerUserRateLimiter(0), clock=lambda: NOW, journal=journal)
    return service, audit, metrics


async def test_create_revoke_delete_are_in_the_trail_and_counted(journaled):
    service, audit, metrics = journaled
    grant = await service.issue(ALICE, REQUEST)
    assert await service.revoke(ALICE) is Completion.DONE
    assert await service.delete(ALICE) is Completion.DONE
    assert [(e.event, e.source, e.acs_user_id) for e in audit.entries] == [
        ("identity_created", "user", grant.communication_user_id),
        ("tokens_revoked", "user", grant.communication_user_id),
        ("identity_deleted", "user", grant.communication_user_id),
    ]
    assert {e.user_ref for e in audit.entries} == {await UserReferences(None, "k" * 40).ref(ALICE.key, length=AUDIT_REF_LENGTH)}
    assert all("alice" not in repr(e) for e in audit.entries)
    assert [name for name, _ in metrics.added] == [
        "acs_identities_created",
        "acs_tokens_issued",
        "acs_revocations",
        "acs_identities_deleted",
    ]


async def test_a_lost_audit_write_fails_nothing(journaled):
    service, audit, _ = journaled

    async def down(entry):
        raise UnavailableError("storage down")

    audit.append = down
    grant = await service.issue(ALICE, REQUEST)
    assert grant.token.token and await service.revoke(ALICE) is Completion.DONE
