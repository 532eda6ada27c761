"""Pure parts of the revocation sweep: pacing arithmetic, message format, policy cut-offs, settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.fanout import host_encoding
from shared.domain.errors import SettingsError
from shared.domain.models import IdentityRecord
from shared.domain.revocation.pacing import RatePacer
from shared.domain.revocation.work import SweepPolicy, WorkItem, chunks, decode_batch, encode_batch
from shared.settings import load_revocation_settings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pacer_allows_the_burst_then_one_call_per_interval():
    clock = FakeClock()
    pacer = RatePacer(rate_per_second=2.0, burst=3, clock=clock)
    delays = []
    for _ in range(5):
        delays.append(pacer.delay_needed())
        pacer._tokens -= 1
    assert delays[:3] == [0, 0, 0]
    assert delays[3] == pytest.approx(0.5)
    clock.now += 10  # idle time refills only up to the burst
    assert pacer.delay_needed() == 0 and pacer._tokens == 3


def test_pacer_pause_holds_every_caller_for_retry_after():
    clock = FakeClock()
    pacer = RatePacer(rate_per_second=100.0, burst=5, clock=clock)
    pacer.pause(7)
    assert pacer.delay_needed() == pytest.approx(7)
    clock.now += 7.005
    assert pacer.delay_needed() == pytest.approx(0.005)  # the bucket refills from the end of the pause, not before
    clock.now += 0.01
    assert pacer.delay_needed() == 0


async def test_pacer_acquire_really_waits():
    pacer = RatePacer(rate_per_second=50.0, burst=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(6):
        await pacer.acquire()
    assert loop.time() - started >= 5 / 50 * 0.9


def test_pacer_rejects_a_zero_rate():
    with pytest.raises(ValueError, match="positive"):
        RatePacer(0)


async def test_batch_messages_round_trip_and_reject_garbage():
    items = [WorkItem("request", "revoke-" + "a" * 64), WorkItem("session", "b" * 64), WorkItem("retention", "c" * 64)]
    import base64

    # What the queue trigger hands over is the host-encoded (base64) message, decoded.
    assert decode_batch(base64.b64decode(host_encoding(encode_batch(items)))) == items
    for bad in (b"[]", b'{"v": 2, "items": []}', b'{"v": 1, "items": ["x:1"]}', b'{"v": 1, "items": ["r:"]}', b"not json"):
        with pytest.raises(ValueError, match=r"batch|work item|Expecting|Extra data"):
            decode_batch(bad)

    async def stream():
        for item in items * 3:
            yield item

    assert [len(c) async for c in chunks(stream(), 4)] == [4, 4, 1]


def test_a_batch_of_the_largest_size_fits_a_queue_message():
    items = [WorkItem("request", "delete-" + "f" * 64)] * 500
    assert len(host_encoding(encode_batch(items))) < 64 * 1024


def record(issued: datetime | None, revoked: datetime | None = None, created: datetime | None = None) -> IdentityRecord:
    return IdentityRecord("k", "8:acs:x", created or (issued or NOW), issued, revoked)


def test_session_policy_only_targets_live_unrevoked_stale_sessions():
    policy = SweepPolicy.at(NOW, max_token_minutes=1440, max_session_hours=8, retention_days=0)
    assert policy.session_due(record(NOW - timedelta(hours=9)))
    assert not policy.session_due(record(NOW - timedelta(hours=7)))  # recent: still in session
    assert not policy.session_due(record(NOW - timedelta(hours=25)))  # its tokens expired anyway
    assert not policy.session_due(record(NOW - timedelta(hours=9), revoked=NOW - timedelta(hours=8)))
    assert policy.session_due(record(NOW - timedelta(hours=9), revoked=NOW - timedelta(hours=10)))  # issued after revoke
    assert not SweepPolicy.at(NOW, max_token_minutes=1440, max_session_hours=0, retention_days=0).session_due(
        record(NOW - timedelta(hours=9))
    )


def test_retention_policy():
    policy = SweepPolicy.at(NOW, max_token_minutes=1440, max_session_hours=0, retention_days=30)
    assert policy.retention_due(record(NOW - timedelta(days=31)))
    assert not policy.retention_due(record(NOW - timedelta(days=29)))
    assert policy.retention_due(record(None, created=NOW - timedelta(days=40)))


def test_revocation_settings_defaults_and_errors_name_the_setting():
    defaults = load_revocation_settings({})
    assert (defaults.rate_per_30s, defaults.concurrency, defaults.batch_size, defaults.time_budget_seconds) == (400, 8, 200, 240)
    assert (defaults.max_session_hours, defaults.retention_days) == (0, 0)
    assert (defaults.table_name, defaults.queue_name) == ("acsrevocations", "acs-revocations")
    assert defaults.rate_per_30s < 500  # headroom under ACS's documented ceiling for user-facing revokes
    for name, value in [
        ("REVOCATION_RATE_PER_30S", "0"),
        ("REVOCATION_CONCURRENCY", "many"),
        ("REVOCATION_BATCH_SIZE", "501"),
        ("MAX_SESSION_HOURS", "-1"),
        ("REVOCATION_QUEUE_NAME", "Bad_Name"),
        ("REVOCATION_QUEUE_NAME", "a--b"),
        ("REVOCATION_TABLE_NAME", "no-dashes"),
    ]:
        with pytest.raises(SettingsError) as caught:
            load_revocation_settings({name: value})
        assert caught.value.setting == name
