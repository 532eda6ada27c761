"""bench/seeding.py: what it writes is what the app's adapters read, transactions obey the service's rules, retries are bounded.

Unit tests: no Azurite, no sockets (a fake table stands in for ``TableClient.submit_transaction``).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.data.tables import UpdateMode

from bench import seeding
from shared.adapters.identity_map import _record, entity_keys
from shared.adapters.ledger import _request
from shared.domain.clock import utc_now
from shared.domain.revocation.work import SweepPolicy


class FlakyTable:
    """Fails each transaction's first ``failures`` submissions with ``error``, then records it."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ServiceResponseError("Connection reset by peer")
        self.attempts: Counter[str] = Counter()
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}

    async def submit_transaction(self, operations: Any, **kwargs: Any) -> None:
        first = operations[0][1]
        name = f"{first['PartitionKey']}/{first['RowKey']}"
        self.attempts[name] += 1
        if self.attempts[name] <= self.failures:
            raise self.error
        for _, entity, _ in operations:
            self.stored[(entity["PartitionKey"], entity["RowKey"])] = entity


async def no_sleep(_: float) -> None:
    return None


def test_identity_row_is_what_the_identity_map_reads_and_the_session_policy_picks() -> None:
    now = utc_now()
    issued = now - timedelta(hours=2)
    entity = seeding.identity_entity(7, "8:acs:r_1", created_at=issued, last_issued_at=issued, resource="acs.example:443")
    record = _record(entity)

    assert (entity["PartitionKey"], entity["RowKey"]) == entity_keys(record.user_key)
    assert record.user_key == '["dev","bench-7"]'
    assert record.acs_user_id == "8:acs:r_1"
    assert record.acs_resource == "acs.example:443"
    assert record.belongs_to("acs.example:443")
    policy = SweepPolicy.at(now, max_token_minutes=1440, max_session_hours=1, retention_days=0)
    assert policy.session_due(record)
    assert not SweepPolicy.at(now, max_token_minutes=60, max_session_hours=1, retention_days=0).session_due(record)


def test_identity_row_without_a_resource_has_no_resource_column() -> None:
    when = utc_now()
    entity = seeding.identity_entity(1, "8:acs:r_2", created_at=when, last_issued_at=when, resource="")
    assert "AcsResource" not in entity
    assert _record(entity).acs_resource is None


def test_revoke_request_row_is_what_the_ledger_reads() -> None:
    now = utc_now()
    entity = seeding.revoke_request_entity(3, now=now)
    request = _request(entity)
    assert request.action == "revoke"
    assert request.user_key == '["dev","bench-3"]'
    assert request.row_key == entity["RowKey"]
    assert request.row_key.startswith("revoke-")
    assert request.not_before == now
    assert request.acs_user_id is None


def test_transactions_keep_one_partition_each_and_at_most_100_operations() -> None:
    entities = [{"PartitionKey": f"p{i % 3}", "RowKey": f"r{i}"} for i in range(250)] + [
        {"PartitionKey": "big", "RowKey": f"b{i}"} for i in range(201)
    ]
    batches = seeding.transactions(entities)

    assert all(len(batch) <= 100 for batch in batches)
    assert all(len({entity["PartitionKey"] for _, entity, _ in batch}) == 1 for batch in batches)
    rows = [entity["RowKey"] for batch in batches for _, entity, _ in batch]
    assert sorted(rows) == sorted(e["RowKey"] for e in entities)
    assert all(op == "upsert" and options == {"mode": UpdateMode.REPLACE} for batch in batches for op, _, options in batch)
    assert sorted(len(b) for b in batches if b[0][1]["PartitionKey"] == "big") == [1, 100, 100]


@pytest.mark.parametrize("size", [0, 101])
def test_transactions_refuse_sizes_the_service_refuses(size: int) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        seeding.transactions([], size=size)


@pytest.mark.parametrize(
    "error, expected",
    [
        (ServiceRequestError("connect"), True),
        (ServiceResponseError("reset"), True),
        (HttpResponseError(message="busy", response=None), False),
        (ResourceExistsError("exists"), False),
        (ValueError("bug"), False),
    ],
)
def test_retryable(error: Exception, expected: bool) -> None:
    assert seeding.retryable(error) is expected


def test_retryable_server_errors_by_status() -> None:
    errors = {}
    for status in (500, 503, 429, 409, 400):
        error = HttpResponseError(message="x")
        error.status_code = status
        errors[status] = seeding.retryable(error)
    assert errors == {500: True, 503: True, 429: True, 409: False, 400: False}


def test_backoff_is_bounded_and_grows() -> None:
    rng = random.Random(1)
    caps = [max(seeding.backoff_seconds(attempt, rng) for _ in range(200)) for attempt in range(1, 8)]
    assert all(0 <= cap <= seeding.BACKOFF_CAP_SECONDS for cap in caps)
    assert caps[0] <= 0.5 < caps[2]
    assert caps[-1] > 4


async def test_submit_retries_lost_answers_then_writes_everything() -> None:
    table = FlakyTable(failures=2)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    entities = [{"PartitionKey": f"{i % 4:02x}", "RowKey": f"r{i}"} for i in range(1000)]
    stats = await seeding.submit_transactions(table, seeding.transactions(entities), sleep=sleep)

    assert len(table.stored) == 1000
    assert stats.rows == 1000
    assert stats.transactions == 12  # 4 partitions of 250 rows: 100 + 100 + 50 each
    assert stats.retries == 24
    assert len(slept) == 24
    assert set(stats.errors) == {"ServiceResponseError"}


async def test_submit_gives_up_after_its_attempts() -> None:
    table = FlakyTable(failures=10)
    with pytest.raises(ServiceResponseError):
        await seeding.submit_transactions(table, seeding.transactions([{"PartitionKey": "a", "RowKey": "1"}]), sleep=no_sleep)
    assert table.attempts["a/1"] == seeding.ATTEMPTS


async def test_submit_does_not_retry_what_a_retry_cannot_fix() -> None:
    table = FlakyTable(failures=1, error=ResourceExistsError("exists"))
    with pytest.raises(ResourceExistsError):
        await seeding.submit_transactions(table, seeding.transactions([{"PartitionKey": "a", "RowKey": "1"}]), sleep=no_sleep)
    assert table.attempts["a/1"] == 1


async def test_create_identities_makes_exactly_count() -> None:
    class Creator:
        def __init__(self) -> None:
            self.made = 0

        async def create_user(self) -> Any:
            self.made += 1
            return type("User", (), {"properties": {"id": f"8:acs:r_{self.made}"}})()

    creator = Creator()
    ids = await seeding.create_identities(creator, 57, concurrency=8)
    assert creator.made == 57
    assert len(set(ids)) == 57


def test_progress_prints_only_for_long_seedings(capsys: pytest.CaptureFixture[str]) -> None:
    short = seeding.progress_printer(1000, "rows", every=1000)
    short(1000)
    long = seeding.progress_printer(5000, "rows", every=1000)
    for done in (500, 1000, 1500, 2100, 5000):
        long(done)
    lines = capsys.readouterr().out.splitlines()
    assert [line.strip() for line in lines] == ["rows: 1000/5000", "rows: 2100/5000", "rows: 5000/5000"]
