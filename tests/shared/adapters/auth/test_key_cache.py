"""The signing key cache's rules with a fake issuer and a fake clock (issue 11, item 2): no sockets, milliseconds.

The attacks these pin, from the issue: an unknown kid per forged token made one fetch each while the
issuer failed (100 tokens, 100 fetches); fetches ran one after another under a lock, so 8 forged
tokens against a slow issuer took 4, 8 ... 32 s; and signed-in users queued behind them once the
keys were stale. The same attacks over HTTP against the running app: tests/app/test_auth_attacks.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.adapters.auth.key_cache import KeyCachePolicy, SigningKeyCache
from shared.domain.errors import UnavailableError

INTERVAL = 30.0
HOUR = 3600.0
DAY = 24 * HOUR


def new_key() -> jwt.PyJWK:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return jwt.PyJWK(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)))


K1, K2 = new_key(), new_key()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeIssuer:
    """The fetch function: counts calls, answers ``keys``, fails, or hangs until released."""

    def __init__(self, keys: Mapping[str, jwt.PyJWK] | None = None) -> None:
        self.keys: Mapping[str, jwt.PyJWK] = keys if keys is not None else {"k1": K1}
        self.calls = 0
        self.failing = False
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None

    def hang(self) -> None:
        self.gate = asyncio.Event()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()

    async def __call__(self) -> Mapping[str, jwt.PyJWK]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        if self.failing:
            raise UnavailableError("The sign-in provider could not be reached; retry later.")
        return self.keys


def cache_for(issuer: FakeIssuer, clock: FakeClock, wait: float = 0.05) -> SigningKeyCache:
    return SigningKeyCache(issuer, KeyCachePolicy(min_interval=INTERVAL, wait=wait), clock)


async def warm(cache: SigningKeyCache) -> None:
    assert await cache.key_for("k1") is K1


async def warm_cache(wait: float = 0.05) -> tuple[FakeIssuer, FakeClock, SigningKeyCache]:
    """A cache that has fetched the issuer's keys once (issuer.calls == 1), with its issuer and clock."""
    issuer, clock = FakeIssuer(), FakeClock()
    cache = cache_for(issuer, clock, wait=wait)
    await warm(cache)
    return issuer, clock, cache


async def settle() -> None:
    """Let tasks that need no outside event run to their end."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_forged_kids_while_the_issuer_fails_cost_one_fetch_per_interval_and_answer_503():
    issuer, clock = FakeIssuer(), FakeClock()
    issuer.failing = True
    cache = cache_for(issuer, clock)
    for n in range(100):
        with pytest.raises(UnavailableError) as caught:
            await cache.key_for(f"forged-{n}")
        assert caught.value.retry_after == INTERVAL  # the clock stood still: the next fetch is a whole interval away
    assert issuer.calls == 1  # the failure is cached like a success (before: 100)
    clock.advance(INTERVAL)
    with pytest.raises(UnavailableError):
        await cache.key_for("forged-again")
    assert issuer.calls == 2


async def test_with_good_keys_held_forged_kids_are_refused_without_a_fetch_storm():
    issuer, clock, cache = await warm_cache()
    issuer.failing = True
    clock.advance(INTERVAL)
    for n in range(100):
        assert await cache.key_for(f"forged-{n}") is None  # 401: not a key of ours, and the issuer cannot say otherwise
    assert issuer.calls == 2  # the first forged kid may look once; the other 99 may not
    assert await cache.key_for("k1") is K1  # signed-in users are still served


async def test_a_known_kid_never_waits_for_a_running_fetch():
    issuer, clock, cache = await warm_cache(wait=3600)  # were it to wait for the fetch, this test would hang, not pass
    clock.advance(HOUR)  # old keys: the next call refreshes them in the background
    issuer.hang()
    first = asyncio.create_task(cache.key_for("k1"))
    await settle()
    assert first.done() and first.result() is K1
    assert issuer.calls == 2  # the background refresh started, and hangs
    again = asyncio.create_task(cache.key_for("k1"))
    await settle()
    assert again.done() and again.result() is K1
    assert issuer.calls == 2  # one fetch at a time
    issuer.release()
    await cache.close()


async def test_a_slow_fetch_is_shared_and_waited_for_only_briefly():
    issuer, clock, cache = await warm_cache()
    clock.advance(INTERVAL)
    issuer.hang()
    forged = [asyncio.create_task(cache.key_for(f"forged-{n}")) for n in range(8)]
    legit = asyncio.create_task(cache.key_for("k1"))
    await settle()
    assert legit.done() and legit.result() is K1  # answered while the forged ones wait
    outcomes = await asyncio.gather(*forged, return_exceptions=True)
    # Each waited at most `wait` for the one shared fetch, then was told to retry: it is still running.
    assert all(isinstance(o, UnavailableError) and "being fetched" in o.message for o in outcomes)
    assert issuer.calls == 2
    issuer.keys = {"k1": K1, "k2": K2}  # the issuer had rotated: the fetch brings the new key
    issuer.release()
    await settle()
    assert await cache.key_for("k2") is K2
    assert issuer.calls == 2


async def test_a_fetch_that_completes_within_the_wait_serves_the_caller_that_needed_it():
    issuer, clock, cache = await warm_cache()
    clock.advance(INTERVAL)
    issuer.keys = {"k1": K1, "k2": K2}
    assert await cache.key_for("k2") is K2  # a rotated key is picked up on its first use
    assert issuer.calls == 2


async def test_last_good_keys_are_trusted_for_a_day_of_failures_then_503():
    issuer, clock, cache = await warm_cache()
    issuer.failing = True
    clock.advance(HOUR)
    assert await cache.key_for("k1") is K1  # served; a background refresh was tried (and failed)
    await settle()
    assert issuer.calls == 2
    clock.advance(DAY - HOUR)
    assert await cache.key_for("k1") is K1  # exactly a day after the last good fetch: still trusted
    clock.advance(1)
    with pytest.raises(UnavailableError):
        await cache.key_for("k1")  # a day and a second: no longer
    issuer.failing = False
    clock.advance(INTERVAL)
    assert await cache.key_for("k1") is K1  # the issuer is back: trusted again


async def test_a_successful_fetch_replaces_the_whole_set_so_a_withdrawn_key_goes():
    issuer, clock, cache = await warm_cache()
    issuer.keys = {"k2": K2}
    clock.advance(INTERVAL)
    assert await cache.key_for("k2") is K2
    assert await cache.key_for("k1") is None


async def test_an_empty_key_set_keeps_the_last_good_keys():
    issuer, clock, cache = await warm_cache()
    issuer.keys = {}
    clock.advance(INTERVAL)
    assert await cache.key_for("k2") is None
    assert await cache.key_for("k1") is K1
    assert issuer.calls == 2


async def test_retry_after_counts_down_to_the_next_allowed_fetch():
    issuer, clock = FakeIssuer(), FakeClock()
    issuer.failing = True
    cache = cache_for(issuer, clock)
    with pytest.raises(UnavailableError):
        await cache.key_for("k1")
    clock.advance(10.5)
    with pytest.raises(UnavailableError) as caught:
        await cache.key_for("k1")
    assert caught.value.retry_after == 20  # ceil(30 - 10.5)


async def test_a_token_without_kid_uses_the_only_key_and_nothing_when_there_are_several():
    issuer, clock = FakeIssuer(), FakeClock()
    cache = cache_for(issuer, clock)
    assert await cache.key_for(None) is K1
    issuer.keys = {"k1": K1, "k2": K2}
    clock.advance(INTERVAL)
    assert await cache.key_for("k2") is K2
    assert await cache.key_for(None) is None


async def test_an_unexpected_fetch_error_is_recorded_not_raised(caplog):
    issuer, clock = FakeIssuer(), FakeClock()
    issuer.error = RuntimeError("boom with details that stay out of answers")
    cache = cache_for(issuer, clock)
    with caplog.at_level(logging.WARNING, logger="shared.auth"), pytest.raises(UnavailableError) as caught:
        await cache.key_for("k1")
    assert "boom" not in caught.value.message
    assert "signing keys not refreshed: RuntimeError" in caplog.text and "boom" not in caplog.text


async def test_close_stops_a_running_fetch():
    issuer, clock = FakeIssuer(), FakeClock()
    issuer.hang()
    cache = cache_for(issuer, clock)
    with pytest.raises(UnavailableError):
        await cache.key_for("k1")
    running = cache._running
    assert running is not None and not running.done()
    await cache.close()
    assert running.cancelled()
