"""The HTTP wrapper records every request's duration by route and status (REQUEST_DURATION), whatever the answer."""

from __future__ import annotations

import azure.functions as func

from shared.domain.errors import SettingsError, ThrottledError
from shared.domain.metrics import REQUEST_DURATION, Metrics
from shared.functions.http import api_endpoint, json_response
from tests.support.metrics import RecordingMetrics


def request(method: str = "POST") -> func.HttpRequest:
    return func.HttpRequest(method=method, url="http://localhost/api/x", headers={}, params={}, route_params={}, body=b"")


async def test_duration_by_route_and_status_for_every_outcome() -> None:
    metrics = RecordingMetrics()
    asked: list[int] = []

    def provider() -> Metrics:
        asked.append(1)
        return metrics

    @api_endpoint("issue_token", ("POST",), provider)
    async def issue(req: func.HttpRequest, ctx: object) -> func.HttpResponse:
        if req.headers.get("x-fail") == "throttled":
            raise ThrottledError("slow down", retry_after=1)
        if req.headers.get("x-fail") == "bug":
            raise RuntimeError("boom")
        return json_response(200, {"ok": True})

    assert asked == []  # not at registration: the worker's metrics are built on first use
    answers = [
        await issue(request()),
        await issue(request("GET")),
        await issue(func.HttpRequest("POST", "http://localhost/api/x", headers={"x-fail": "throttled"}, body=b"")),
        await issue(func.HttpRequest("POST", "http://localhost/api/x", headers={"x-fail": "bug"}, body=b"")),
    ]
    assert [answer.status_code for answer in answers] == [200, 405, 429, 500]
    recorded = metrics.named(REQUEST_DURATION)
    assert [(call.kind, call.attributes) for call in recorded] == [
        ("record", {"route": "issue_token", "status": status}) for status in ("200", "405", "429", "500")
    ]
    assert all(call.value >= 0 for call in recorded)
    assert len(asked) == 4


async def test_metrics_that_cannot_be_built_do_not_change_the_answer() -> None:
    def broken() -> Metrics:
        raise SettingsError("APPLICATIONINSIGHTS_CONNECTION_STRING", "is malformed")

    @api_endpoint("health", ("GET",), broken)
    async def health(req: func.HttpRequest, ctx: object) -> func.HttpResponse:
        return json_response(200, {"status": "ok"})

    assert (await health(request("GET"))).status_code == 200
