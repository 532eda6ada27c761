"""The app's metrics end to end: the real app (devhost, Azurite, the ACS emulator) exporting to the ingestion stand-in.

What the wiring must give (composition, the HTTP wrapper, the ACS adapter): a request duration per
route and status, failed ACS calls by operation and code; and nothing the app sends to Application
Insights, metrics or logs or traces, may carry a token, the user's id or a key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localdev.azurite import DEV_KEY
from shared.domain.metrics import ACS_ERRORS, IDENTITIES_CREATED, REQUEST_DURATION, REVOCATIONS, TOKENS_ISSUED
from tests.support.app_process import as_user, post_json
from tests.support.ingestion import Ingestion, running_ingestion

pytestmark = pytest.mark.integration


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    with running_ingestion() as stand_in:
        yield stand_in


def has_point(ingestion: Ingestion, name: str, **properties: str) -> bool:
    return any(p["name"] == name and properties.items() <= p["properties"].items() for p in ingestion.metric_points())


def test_requests_and_acs_failures_are_exported_without_secrets(app_factory, emulator, ingestion) -> None:
    app = app_factory(
        APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string,
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel",
        OTEL_METRIC_EXPORT_INTERVAL="500",  # milliseconds; the default minute would only slow the test down
    )
    user = f"metrics-user-{uuid.uuid4().hex[:12]}"
    issued = post_json(app.api("token"), None, as_user(user))
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    emulator.set_faults(throttleNext=10, retryAfterSeconds=1)
    try:
        throttled = post_json(app.api("token/refresh"), None, as_user(user))
    finally:
        emulator.set_faults(throttleNext=0)
    assert throttled.status_code == 429, throttled.text

    assert post_json(app.api("token/revoke"), None, as_user(user)).status_code == 204
    expected = [
        (REQUEST_DURATION, {"route": "issue_token", "status": "200"}),
        (REQUEST_DURATION, {"route": "refresh_token", "status": "429"}),
        (ACS_ERRORS, {"operation": "issue_token", "code": "throttled"}),
        # the domain's own counters, told through the journal
        (TOKENS_ISSUED, {"kind": "issue"}),
        (IDENTITIES_CREATED, {"source": "user"}),
        (REVOCATIONS, {"source": "user"}),
    ]
    arrived = ingestion.wait_for(lambda seen: all(has_point(seen, name, **props) for name, props in expected))
    assert arrived, [(p["name"], p["properties"]) for p in ingestion.metric_points()]
    [duration] = [
        p for p in ingestion.metric_points() if p["name"] == REQUEST_DURATION and p["properties"]["route"] == "issue_token"
    ]
    assert duration["count"] == 1 and duration["value"] > 0  # one request's milliseconds

    app.stop()
    everything = ingestion.text()
    assert "MessageData" in everything  # the app's logs were exported too, and are searched below
    for secret in (token, token.split(".")[0], user, emulator.access_key, DEV_KEY):
        assert secret not in everything
