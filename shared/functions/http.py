"""The wrapper every HTTP function shares: method check, errors as status codes, one log line.

``api_endpoint`` turns a handler ``(req, ctx) -> HttpResponse`` into the function the
host calls: it enforces the method (the routes accept every method so that a wrong
one gets this service's JSON 405 rather than the host's bare 404), maps domain
errors to precise status codes with a JSON error body (the tables below), hides
unexpected errors behind a correlation id, logs one line per request without
secrets, and records the request's duration by route and status (``REQUEST_DURATION``)
in the metrics it is given.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from shared.adapters.telemetry import record_request
from shared.domain.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    MisconfiguredError,
    NotFoundError,
    RetryLaterError,
    ServiceError,
    SettingsError,
    ThrottledError,
    UnauthenticatedError,
    UnavailableError,
)
from shared.domain.metrics import REQUEST_DURATION, Metrics

logger = logging.getLogger("shared.http")

#: Every method the host may route to a function; the wrapper answers 405 itself.
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

#: Domain errors and their status codes (the most specific class in an error's MRO wins).
STATUS_BY_ERROR: dict[type[ServiceError], int] = {
    InvalidRequestError: 400,
    UnauthenticatedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    ThrottledError: 429,
    UnavailableError: 503,
}
#: Errors whose details go to the log only: the caller gets a correlation id.
SERVER_SIDE_ERRORS: tuple[type[ServiceError], ...] = (SettingsError, MisconfiguredError)


class RequestRejected(ServiceError):
    """A request-shape problem with its own status (405, 413, 415)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.headers = dict(headers or {})


def json_response(status: int, body: object | None = None, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """A JSON answer (or an empty 204) with no-store caching: tokens must never be cached."""
    all_headers = {**_SECURITY_HEADERS, **(headers or {})}
    if body is None:
        return func.HttpResponse(status_code=status, headers=all_headers)
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=all_headers,
    )


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {"code", "message", ...}}``, the shape of every error answer."""
    return {"error": {"code": code, "message": message, **extra}}


def status_of(error: ServiceError) -> int:
    """The status code for a domain error (500 for one the tables do not know)."""
    if isinstance(error, RequestRejected):
        return error.status
    return next((STATUS_BY_ERROR[kind] for kind in type(error).__mro__ if kind in STATUS_BY_ERROR), 500)


def error_response(error: ServiceError, correlation_id: str) -> func.HttpResponse:
    """Map a domain error to its status code, headers and JSON body."""
    if isinstance(error, SERVER_SIDE_ERRORS):
        # Details (which setting) go to the log only; the caller gets a correlation id.
        logger.error("misconfigured correlation_id=%s: %s", correlation_id, error.message)
        return json_response(
            500,
            error_body(
                "misconfigured", "The service is misconfigured; the operator has been told.", correlationId=correlation_id
            ),
        )
    headers: dict[str, str] = dict(error.headers) if isinstance(error, RequestRejected) else {}
    extra: dict[str, Any] = {}
    if isinstance(error, RetryLaterError):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, (UnauthenticatedError, ForbiddenError)) and error.www_authenticate:
        headers["WWW-Authenticate"] = error.www_authenticate
    if isinstance(error, InvalidRequestError) and error.target:
        extra["target"] = error.target
    return json_response(status_of(error), error_body(error.code, error.message, **extra), headers)


@dataclass
class RequestContext:
    """What a handler may tell the wrapper for its log line."""

    correlation_id: str
    user_ref: str | None = None
    #: computes ``user_ref`` when the line is written: the key behind it may need storage, and a
    #: request must neither wait for nor fail on its log line
    user_ref_later: Callable[[], Awaitable[str]] | None = None

    async def user_for_log(self) -> str:
        if self.user_ref is None and self.user_ref_later is not None:
            try:
                self.user_ref = await self.user_ref_later()
            except ServiceError:
                self.user_ref = "unavailable"
        return self.user_ref or "-"


Handler = Callable[[func.HttpRequest, RequestContext], Awaitable[func.HttpResponse]]
Endpoint = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
#: The worker's metrics, asked for on each request (``Services.metrics``: built on first use, not at import).
MetricsProvider = Callable[[], Metrics]


def record_duration(metrics: MetricsProvider, route: str, status: int, latency_ms: float) -> None:
    """``REQUEST_DURATION`` in milliseconds by route (the function's name) and status; never fails the request."""
    try:
        metrics().record(REQUEST_DURATION, latency_ms, {"route": route, "status": str(status)})
    except ServiceError as error:  # e.g. a settings error while building the metrics: the answer stands
        logger.warning("request duration not recorded (%s)", error.code)


def method_not_allowed(methods: tuple[str, ...]) -> RequestRejected:
    """The 405 for a method outside ``methods``, with ``Allow``."""
    return RequestRejected(
        405, "method_not_allowed", f"Use {' or '.join(methods)} for this endpoint.", {"Allow": ", ".join(methods)}
    )


def http_function(
    bp: func.Blueprint,
    name: str,
    route: str,
    method: str,
    auth_level: func.AuthLevel,
    metrics: MetricsProvider | None,
) -> Callable[[Handler], Any]:
    """Register a handler as the HTTP function ``name`` on ``bp`` (``name`` is also its log and metric name).

    Every method is routed to it, so a wrong one gets this API's JSON 405 from :func:`api_endpoint`
    rather than the host's empty 404.
    """

    def register(handler: Handler) -> Any:
        endpoint = api_endpoint(name, (method,), metrics)(handler)
        return bp.function_name(name)(bp.route(route=route, methods=ALL_METHODS, auth_level=auth_level)(endpoint))

    return register


def api_endpoint(name: str, methods: tuple[str, ...], metrics: MetricsProvider | None = None) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: method check, error mapping, correlation id, one log line, its duration in ``metrics``."""

    def decorate(handler: Handler) -> Endpoint:
        async def endpoint(req: func.HttpRequest) -> func.HttpResponse:
            started = time.perf_counter()
            ctx = RequestContext(correlation_id=uuid.uuid4().hex)
            try:
                if req.method.upper() not in methods:
                    raise method_not_allowed(methods)
                response = await handler(req, ctx)
            except ServiceError as error:
                response = error_response(error, ctx.correlation_id)
            except Exception:
                logger.exception("unhandled error in %s correlation_id=%s", name, ctx.correlation_id)
                response = json_response(
                    500,
                    error_body("internal_error", "Something went wrong on our side.", correlationId=ctx.correlation_id),
                )
            response.headers["X-Correlation-Id"] = ctx.correlation_id
            latency_ms = (time.perf_counter() - started) * 1000
            user = await ctx.user_for_log()
            logger.info(
                "request function=%s method=%s status=%d latency_ms=%.1f user=%s correlation_id=%s",
                name,
                req.method.upper(),
                response.status_code,
                latency_ms,
                user,
                ctx.correlation_id,
            )
            record_request(name, response.status_code, latency_ms)
            if metrics is not None:
                record_duration(metrics, name, response.status_code, latency_ms)
            return response

        # Not functools.wraps: the Functions worker binds parameters from the signature,
        # which must stay (req) and not follow __wrapped__ to the handler's (req, ctx).
        endpoint.__name__ = handler.__name__
        endpoint.__qualname__ = handler.__qualname__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return decorate
