"""The HTTP wrapper: unexpected errors hide behind a correlation id that is in the log."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.domain.errors import ThrottledError, UnauthenticatedError
from shared.functions.http import api_endpoint, json_response


def request(method="POST", body=b"", headers=None):
    return func.HttpRequest(
        method=method, url="http://localhost/api/x", headers=headers or {}, params={}, route_params={}, body=body
    )


async def test_unexpected_error_is_500_with_correlation_id_in_log(caplog):
    @api_endpoint("boom", ("POST",))
    async def boom(req, ctx):
        raise RuntimeError("secret detail: accesskey=abc")

    with caplog.at_level(logging.INFO, logger="shared.http"):
        response = await boom(request())
    body = json.loads(response.get_body())
    assert response.status_code == 500
    assert body["error"]["code"] == "internal_error"
    correlation_id = body["error"]["correlationId"]
    assert response.headers["X-Correlation-Id"] == correlation_id
    assert correlation_id in caplog.text and "Traceback" in caplog.text  # the trace is logged...
    assert "accesskey" not in response.get_body().decode()  # ...never returned


async def test_domain_errors_map_to_status_and_headers():
    @api_endpoint("limited", ("POST",))
    async def limited(req, ctx):
        raise ThrottledError("slow down", retry_after=7, code="rate_limited")

    @api_endpoint("guarded", ("POST",))
    async def guarded(req, ctx):
        raise UnauthenticatedError("who are you", www_authenticate='Bearer realm="x"')

    throttled = await limited(request())
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    unauthenticated = await guarded(request())
    assert unauthenticated.status_code == 401 and unauthenticated.headers["WWW-Authenticate"] == 'Bearer realm="x"'


async def test_method_check_and_one_log_line_with_hashed_user(caplog):
    @api_endpoint("ok", ("GET",))
    async def ok(req, ctx):
        ctx.user_ref = "abc123"
        return json_response(200, {"fine": True})

    wrong = await ok(request("POST"))
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    with caplog.at_level(logging.INFO, logger="shared.http"):
        good = await ok(request("GET"))
    assert good.status_code == 200 and good.headers["Cache-Control"] == "no-store"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")]
    assert len(lines) == 1 and "function=ok" in lines[0] and "status=200" in lines[0] and "user=abc123" in lines[0]


def test_wrapped_function_keeps_the_signature_the_worker_binds():
    import inspect

    @api_endpoint("sig", ("GET",))
    async def handler(req, ctx):
        return json_response(204)

    assert list(inspect.signature(handler).parameters) == ["req"]
