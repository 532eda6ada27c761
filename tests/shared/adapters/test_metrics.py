"""shared/adapters/metrics.py: one instrument per metric name, vetted attributes, gauges reported once.

The unit tests read the instruments through OpenTelemetry's in-memory reader, with the
temporalities the Azure Monitor exporter asks for (delta counters and histograms); the
integration tests run the real exporter in a fresh interpreter against the local ingestion
stand-in (``tests/support/ingestion.py``) and read what it was sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from shared.adapters import metrics as adapter
from shared.adapters.metrics import COUNTERS, GAUGES, HISTOGRAMS, OpenTelemetryMetrics, create_metrics, vet_attributes
from shared.domain import metrics as names
from shared.domain.metrics import (
    ACS_ERRORS,
    CAMPAIGN_REMAINING,
    REQUEST_DURATION,
    REVOCATIONS,
    SWEEP_BACKLOG,
    TOKENS_ISSUED,
    NoMetrics,
)
from tests.support.ingestion import Ingestion, run_child, running_ingestion

FAKE_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJza3lwZWlkIjoiYWNzOmFiYyJ9.c2lnbmF0dXJlLXNob3VsZC1uZXZlci1sZWFr"
USER_ID = "alice.smith@example.com"
ACS_CONNECTION_STRING = "endpoint=https://contoso.communication.azure.com/;accesskey=c2VjcmV0LWtleS1uZXZlci1zZW50"


def domain_metric_names() -> set[str]:
    return {value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)}


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader(
        preferred_temporality={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    )


@pytest.fixture
def exported(reader: InMemoryMetricReader) -> Iterator[OpenTelemetryMetrics]:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield OpenTelemetryMetrics(provider)
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> dict[str, list[dict[str, Any]]]:
    """One collection: metric name -> its points as {"attributes", "value" | "sum"/"count"/"min"/"max"}."""
    data = reader.get_metrics_data()
    points: dict[str, list[dict[str, Any]]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            assert scope.scope.name == adapter.METER_NAME
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    fields = {k: getattr(point, k) for k in ("value", "sum", "count", "min", "max") if hasattr(point, k)}
                    points.setdefault(metric.name, []).append({"attributes": dict(point.attributes or {}), **fields})
    return points


# ---------------------------------------------------------------------------- instruments


def test_every_domain_metric_has_exactly_one_instrument() -> None:
    kinds = [set(COUNTERS), set(HISTOGRAMS), set(GAUGES)]
    assert set().union(*kinds) == domain_metric_names()
    assert sum(len(kind) for kind in kinds) == len(domain_metric_names())  # none is two kinds at once
    assert HISTOGRAMS[REQUEST_DURATION][0] == "ms"
    assert set(GAUGES) == {SWEEP_BACKLOG, CAMPAIGN_REMAINING}


def test_counters_add_per_attribute_set_as_deltas(exported: OpenTelemetryMetrics, reader: InMemoryMetricReader) -> None:
    exported.add(TOKENS_ISSUED, attributes={"kind": "issue"})
    exported.add(TOKENS_ISSUED, attributes={"kind": "issue"})
    exported.add(TOKENS_ISSUED, attributes={"kind": "refresh"})
    exported.add(REVOCATIONS, 3, {"source": "campaign"})
    first = collect(reader)
    assert sorted((p["attributes"]["kind"], p["value"]) for p in first[TOKENS_ISSUED]) == [("issue", 2), ("refresh", 1)]
    assert first[REVOCATIONS] == [{"attributes": {"source": "campaign"}, "value": 3}]
    exported.add(TOKENS_ISSUED, attributes={"kind": "issue"})
    second = collect(reader)
    assert second[TOKENS_ISSUED] == [{"attributes": {"kind": "issue"}, "value": 1}]  # what happened since, not a total
    assert REVOCATIONS not in second


def test_request_duration_is_a_histogram_in_milliseconds(exported: OpenTelemetryMetrics, reader: InMemoryMetricReader) -> None:
    for latency in (10.0, 20.0, 30.0):
        exported.record(REQUEST_DURATION, latency, {"route": "issue_token", "status": "200"})
    exported.record(REQUEST_DURATION, 5.0, {"route": "issue_token", "status": "429"})
    points = {p["attributes"]["status"]: p for p in collect(reader)[REQUEST_DURATION]}
    ok = points["200"]
    assert (ok["sum"], ok["count"], ok["min"], ok["max"]) == (60.0, 3, 10.0, 30.0)
    assert ok["attributes"] == {"route": "issue_token", "status": "200"}
    assert points["429"]["count"] == 1


def test_a_gauge_reports_each_value_once_and_the_last_one_wins(
    exported: OpenTelemetryMetrics, reader: InMemoryMetricReader
) -> None:
    exported.set(SWEEP_BACKLOG, 5000)
    exported.set(SWEEP_BACKLOG, 4200)  # a later run in the same interval
    exported.set(CAMPAIGN_REMAINING, 17, {"campaign": "3f2a9c1d0b7e4a5f"})
    first = collect(reader)
    assert first[SWEEP_BACKLOG] == [{"attributes": {}, "value": 4200.0}]
    assert first[CAMPAIGN_REMAINING] == [{"attributes": {"campaign": "3f2a9c1d0b7e4a5f"}, "value": 17.0}]
    # Nothing set since: nothing reported (an instance's old value is never repeated as current).
    assert SWEEP_BACKLOG not in collect(reader)
    exported.set(SWEEP_BACKLOG, 0)
    assert collect(reader)[SWEEP_BACKLOG] == [{"attributes": {}, "value": 0.0}]


# ---------------------------------------------------------------------------- attributes


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"kind": "teams"}, {"kind": "teams"}),
        ({"kind": "alice"}, {"kind": "unknown"}),  # snake_case, but not a kind: could be a user id
        ({"source": "retention"}, {"source": "retention"}),
        ({"source": USER_ID}, {"source": "unknown"}),
        ({"operation": "revoke_tokens", "code": "throttled"}, {"operation": "revoke_tokens", "code": "throttled"}),
        ({"operation": FAKE_TOKEN, "code": ACS_CONNECTION_STRING}, {"operation": "unknown", "code": "unknown"}),
        ({"route": "issue_token", "status": "200"}, {"route": "issue_token", "status": "200"}),
        ({"route": "Bearer abc", "status": "2000"}, {"route": "unknown", "status": "unknown"}),
        ({"status": 503}, {"status": "503"}),  # an int status is exported as its digits
        ({"status": True}, {"status": "unknown"}),
        ({"campaign": "3f2a9c1d-0b7e-4a5f-9e61-2d0c5b8a7f10"}, {"campaign": "3f2a9c1d-0b7e-4a5f-9e61-2d0c5b8a7f10"}),
        ({"campaign": "Incident: Alice's laptop"}, {"campaign": "unknown"}),
        ({"userId": USER_ID, "kind": "issue"}, {"kind": "issue"}),  # not an attribute of any metric: dropped
        (None, {}),
    ],
)
def test_attribute_values_are_vetted_per_attribute(attributes: dict[str, Any] | None, expected: dict[str, str]) -> None:
    assert vet_attributes(attributes) == expected


def test_vetting_applies_to_every_kind_of_instrument(exported: OpenTelemetryMetrics, reader: InMemoryMetricReader) -> None:
    exported.add(ACS_ERRORS, attributes={"operation": "issue_token", "code": FAKE_TOKEN, "user": USER_ID})
    exported.record(REQUEST_DURATION, 1.0, {"route": USER_ID, "status": "200"})
    exported.set(CAMPAIGN_REMAINING, 1, {"campaign": USER_ID})
    points = collect(reader)
    assert points[ACS_ERRORS][0]["attributes"] == {"operation": "issue_token", "code": "unknown"}
    assert points[REQUEST_DURATION][0]["attributes"] == {"route": "unknown", "status": "200"}
    assert points[CAMPAIGN_REMAINING][0]["attributes"] == {"campaign": "unknown"}


# ---------------------------------------------------------------------------- never fails the caller


def test_misuse_is_logged_once_and_ignored(
    exported: OpenTelemetryMetrics, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    adapter._reported.clear()
    for _ in range(3):
        exported.add(SWEEP_BACKLOG)  # a gauge used as a counter
        exported.set(TOKENS_ISSUED, 1)  # a counter used as a gauge
        exported.record("acs_not_a_metric", 1.0)
        exported.set(SWEEP_BACKLOG, "many")  # a caller's bug must not fail it
    assert collect(reader) == {}
    warnings = [r.getMessage() for r in caplog.records if r.name == "shared.metrics"]
    assert len(warnings) == 4, warnings  # once per problem, not per call
    assert any("acs_sweep_backlog is not a counter" in w for w in warnings)


class _BrokenInstrument:
    def add(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter exploded")

    record = add


class _BrokenMeter:
    def create_counter(self, *args: object, **kwargs: object) -> _BrokenInstrument:
        return _BrokenInstrument()

    create_histogram = create_counter

    def create_observable_gauge(self, *args: object, **kwargs: object) -> None:
        return None


class _BrokenProvider:
    def get_meter(self, name: str) -> _BrokenMeter:
        return _BrokenMeter()


def test_an_instrument_that_raises_never_reaches_the_caller() -> None:
    broken = OpenTelemetryMetrics(_BrokenProvider())  # duck-typed stand-in for a provider
    broken.add(TOKENS_ISSUED, attributes={"kind": "issue"})
    broken.record(REQUEST_DURATION, 1.0, {"route": "health", "status": "200"})


def test_without_application_insights_there_are_no_metrics() -> None:
    assert isinstance(create_metrics({}), NoMetrics)
    assert isinstance(create_metrics({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}), NoMetrics)


# ---------------------------------------------------------------------------- against the ingestion stand-in


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    with running_ingestion() as stand_in:
        yield stand_in


@pytest.mark.integration  # a fresh interpreter
def test_importing_the_app_without_application_insights_loads_no_opentelemetry() -> None:
    """Cold start (bench coldstart measures ``import function_app``) pays nothing for metrics it does not export."""
    result = run_child(
        """
        import sys
        import function_app
        from shared.domain.metrics import NoMetrics
        assert isinstance(function_app.services.metrics(), NoMetrics)
        print("HEAVY", sorted(m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry"))))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


@pytest.mark.integration  # a fresh interpreter and a local ingestion server
def test_metrics_reach_application_insights_with_their_names_and_vetted_attributes(ingestion: Ingestion) -> None:
    result = run_child(
        f"""
        from opentelemetry import metrics
        from shared.adapters.metrics import create_metrics
        from shared.domain.metrics import *

        env = {{"APPLICATIONINSIGHTS_CONNECTION_STRING": {ingestion.connection_string!r}}}
        exported = create_metrics(env)
        assert create_metrics(env) is exported  # one per process
        for kind in ("issue", "issue", "refresh", "teams"):
            exported.add(TOKENS_ISSUED, attributes={{"kind": kind}})
        exported.add(IDENTITIES_CREATED, attributes={{"source": "user"}})
        exported.add(IDENTITIES_DELETED, attributes={{"source": "retention"}})
        exported.add(REVOCATIONS, attributes={{"source": "operator"}})
        exported.add(ACS_ERRORS, attributes={{"operation": "revoke_tokens", "code": "throttled"}})
        for latency in (10.0, 20.0, 30.0):
            exported.record(REQUEST_DURATION, latency, {{"route": "issue_token", "status": "200"}})
        exported.set(SWEEP_BACKLOG, 1234)
        exported.set(CAMPAIGN_REMAINING, 56, {{"campaign": "c0ffee"}})
        # What must never be sent, passed where names are expected:
        exported.add(TOKENS_ISSUED, attributes={{"kind": {FAKE_TOKEN!r}, "userId": {USER_ID!r}}})
        exported.add(ACS_ERRORS, attributes={{"operation": {USER_ID!r}, "code": {ACS_CONNECTION_STRING!r}}})
        exported.record(REQUEST_DURATION, 1.0, {{"route": {FAKE_TOKEN!r}, "status": "401"}})
        provider = metrics.get_meter_provider()
        assert provider.force_flush(10_000)
        assert provider.force_flush(10_000)  # a second collection: nothing new, so nothing sent again
        print("FLUSHED")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "FLUSHED" in result.stdout
    points = [p for p in ingestion.metric_points() if p["name"] in domain_metric_names()]

    def values(name: str) -> list[tuple[dict[str, str], float]]:
        return sorted(((p["properties"], p["value"]) for p in points if p["name"] == name), key=repr)

    assert values(TOKENS_ISSUED) == sorted(
        [({"kind": "issue"}, 2), ({"kind": "refresh"}, 1), ({"kind": "teams"}, 1), ({"kind": "unknown"}, 1)], key=repr
    )
    assert values(names.IDENTITIES_CREATED) == [({"source": "user"}, 1)]
    assert values(names.IDENTITIES_DELETED) == [({"source": "retention"}, 1)]
    assert values(REVOCATIONS) == [({"source": "operator"}, 1)]
    assert values(ACS_ERRORS) == sorted(
        [({"operation": "revoke_tokens", "code": "throttled"}, 1), ({"operation": "unknown", "code": "unknown"}, 1)], key=repr
    )
    [duration] = [p for p in points if p["name"] == REQUEST_DURATION and p["properties"]["status"] == "200"]
    assert duration["properties"] == {"route": "issue_token", "status": "200"}
    assert (duration["value"], duration["count"], duration["min"], duration["max"]) == (60.0, 3, 10.0, 30.0)
    assert values(SWEEP_BACKLOG) == [({}, 1234.0)]  # exactly once, though collected twice
    assert values(CAMPAIGN_REMAINING) == [({"campaign": "c0ffee"}, 56.0)]

    everything = ingestion.text()
    for secret in (FAKE_TOKEN, FAKE_TOKEN.split(".")[0], USER_ID, ACS_CONNECTION_STRING, "accesskey", "c2VjcmV0"):
        assert secret not in everything, secret
