"""shared/adapters/telemetry.py: nothing without the setting; with it, request metrics reach the
ingestion endpoint with operation/status/latency and no token.

Each case runs in a fresh interpreter: configure_azure_monitor installs process-global
OpenTelemetry providers, and "azure.monitor was not imported" is only meaningful there.
The ingestion endpoint is a local HTTP server; statsbeat and the Azure VM resource
detector (which would call Microsoft endpoints and the instance metadata address) are
turned off for the child, and live metrics point at the same loopback server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shared.adapters import telemetry
from tests.support.ingestion import Ingestion, run_child, running_ingestion

#: Looks like a real JWT (header.payload.signature): must never be exported.
FAKE_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJza3lwZWlkIjoiYWNzOmFiYyJ9.c2lnbmF0dXJlLXNob3VsZC1uZXZlci1sZWFr"


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    with running_ingestion() as stand_in:
        yield stand_in


@pytest.mark.integration  # a fresh interpreter per test (and a local ingestion server)
def test_without_connection_string_nothing_is_configured_or_imported() -> None:
    result = run_child(
        """
        import sys
        from shared.adapters.telemetry import configure_telemetry, record_request, is_configured
        assert configure_telemetry({}) is False
        assert configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "   "}) is False
        record_request("issue_token", 200, 3.2)
        assert not is_configured()
        heavy = sorted(m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry")))
        print("HEAVY", heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


@pytest.mark.integration  # a fresh interpreter per test (and a local ingestion server)
def test_importing_the_module_is_cheap() -> None:
    """Importing shared.adapters.telemetry alone (what function_app.py does) loads no exporter."""
    result = run_child(
        """
        import sys
        import shared.adapters.telemetry
        print("HEAVY", sorted(m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry", "azure.identity"))))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


@pytest.mark.integration  # a fresh interpreter per test (and a local ingestion server)
def test_recorded_request_reaches_ingestion_with_dimensions_and_no_token(ingestion: Ingestion) -> None:
    connection_string = ingestion.connection_string
    result = run_child(
        f"""
        from opentelemetry import trace, _logs
        from shared.adapters.telemetry import configure_telemetry, record_request

        env = {{"APPLICATIONINSIGHTS_CONNECTION_STRING": {connection_string!r}}}
        assert configure_telemetry(env) is True
        assert configure_telemetry(env) is True  # idempotent: one set of providers

        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("POST /api/token"):
            record_request("issue_token", 200, 12.34)
        # A token passed where a name is expected is replaced, never echoed.
        with tracer.start_as_current_span("POST /api/token/refresh"):
            record_request({FAKE_TOKEN!r}, 401, 1.0)

        trace.get_tracer_provider().force_flush(10_000)
        _logs.get_logger_provider().force_flush(10_000)
        print("FLUSHED")
        """,
        # The distro's default sampler keeps ~5 traces/s and may drop the second of two
        # back-to-back spans; this test wants every span.
        {"OTEL_TRACES_SAMPLER": "always_on"},
    )
    assert result.returncode == 0, result.stderr
    assert "FLUSHED" in result.stdout

    envelopes = ingestion.envelopes()
    everything = ingestion.text()
    assert FAKE_TOKEN not in everything
    assert FAKE_TOKEN.split(".")[0] not in everything  # not even the header part

    def dims(kind: str) -> list[dict]:
        return [e["data"]["baseData"].get("properties", {}) for e in envelopes if e.get("data", {}).get("baseType") == kind]

    logged = [p for p in dims("MessageData") if p.get("operation")]
    assert {"operation": "issue_token", "status": "200", "latency_ms": "12.3"}.items() <= logged[0].items(), logged
    assert any(p.get("operation") == "unknown" and p.get("status") == "401" for p in logged), logged
    assert len([p for p in logged if p["operation"] == "issue_token"]) == 1  # configured once, exported once

    spans = [p for kind in ("RequestData", "RemoteDependencyData") for p in dims(kind)]
    assert any(p.get("app.operation") == "issue_token" and p.get("app.status") == "200" for p in spans), spans
    assert any(p.get("app.operation") == "unknown" for p in spans), spans


def test_entra_authentication_string_gives_a_managed_identity_credential() -> None:
    credential = telemetry._entra_credential(
        {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD"}
    )
    assert type(credential).__name__ == "ManagedIdentityCredential"
    assert telemetry._entra_credential({}) is None
    assert telemetry._entra_credential({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=Key"}) is None


@pytest.mark.parametrize("name", ["issue_token", "health", "delete_identity"])
def test_function_names_are_kept(name: str) -> None:
    assert telemetry.safe_name(name) == name


@pytest.mark.parametrize("value", [FAKE_TOKEN, "Bearer abc", "endpoint=https://x/;accesskey=k", "", "A" * 10, "x" * 65])
def test_anything_else_is_not_exported_verbatim(value: str) -> None:
    assert telemetry.safe_name(value) == "unknown"


@pytest.fixture
def sdk_logger() -> Iterator[logging.Logger]:
    """The SDKs' logger as a fresh worker has it: no level of its own, under a root that passes INFO."""
    sdk, root = logging.getLogger(telemetry.SDK_LOGGER_NAME), logging.getLogger()
    before = sdk.level, root.level
    sdk.setLevel(logging.NOTSET)
    root.setLevel(logging.INFO)
    yield sdk
    sdk.setLevel(before[0])
    root.setLevel(before[1])


def test_the_sdks_request_logs_which_name_storage_rows_are_kept_out(sdk_logger: logging.Logger) -> None:
    policy = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    assert policy.isEnabledFor(logging.INFO)  # what leaked on Python 3.13 (azure-functions-runtime path)
    telemetry.quiet_sdk_logs()
    assert not policy.isEnabledFor(logging.INFO)  # "Request URL: '.../identities(PartitionKey=..,RowKey=..)'"
    assert policy.isEnabledFor(logging.WARNING)


def test_a_level_an_operator_chose_for_the_sdks_is_kept(sdk_logger: logging.Logger) -> None:
    sdk_logger.setLevel(logging.DEBUG)
    telemetry.quiet_sdk_logs()
    assert sdk_logger.level == logging.DEBUG
