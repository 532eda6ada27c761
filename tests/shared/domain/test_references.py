"""Keyed user references (issue 11, finding 8: an unsalted SHA-256 let anyone with the logs confirm a guessed id)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest

from shared.domain.caller import user_key
from shared.domain.references import SECRET_NAME, UserReferences
from tests.support.fakes import FakeSecrets

ALICE = user_key("https://login.microsoftonline.com/tenant/v2.0", "alice-oid")
KEY = "k" * 40


async def test_a_configured_key_gives_the_hmac_and_never_the_plain_hash() -> None:
    refs = UserReferences(None, KEY)
    ref = await refs.ref(ALICE)
    assert ref == hmac.new(KEY.encode(), ALICE.encode(), hashlib.sha256).hexdigest()[:16]
    assert ref != hashlib.sha256(ALICE.encode()).hexdigest()[:16]  # what a guesser can compute offline
    assert await UserReferences(None, "x" * 40).ref(ALICE) != ref
    assert len(await refs.ref(ALICE, length=32)) == 32


async def test_a_generated_key_is_stored_once_and_shared_by_every_worker() -> None:
    store = FakeSecrets()
    workers = [UserReferences(store) for _ in range(3)]
    refs = await asyncio.gather(*(worker.ref(ALICE) for worker in workers for _ in range(3)))
    assert len(set(refs)) == 1 and store.writes == 1 and len(store.values[SECRET_NAME]) >= 40


def test_neither_a_key_nor_a_store_is_refused() -> None:
    with pytest.raises(ValueError, match="configured key or a secret store"):
        UserReferences(None)
