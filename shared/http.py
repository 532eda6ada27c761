"""HTTP plumbing shared by every HTTP function: JSON bodies in and out, errors, one log line.

``api_endpoint`` wraps a handler so that ``function_app.py`` stays a list of
routes: it enforces the method, authenticates the caller, turns domain errors
into precise status codes with a JSON error body, hides unexpected errors
behind a correlation id, and logs one line per request without secrets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from shared.errors import (
    ForbiddenError,
    InvalidRequestError,
    MisconfiguredError,
    NotFoundError,
    ServiceError,
    SettingsError,
    ThrottledError,
    UnauthenticatedError,
    UnavailableError,
)
from shared.telemetry import record_request

logger = logging.getLogger("shared.http")

#: Token requests are tiny; anything bigger is a mistake or an attack.
MAX_BODY_BYTES = 16 * 1024
#: Every method the host may route to a function; the wrapper answers 405 itself.
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class RequestRejected(ServiceError):
    """A request-shape problem with its own status (405, 413, 415)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.headers = dict(headers or {})


def json_response(status: int, body: Any | None = None, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
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
    return {"error": {"code": code, "message": message, **extra}}


def error_response(error: ServiceError, correlation_id: str) -> func.HttpResponse:
    """Map a domain error to its status code, headers and JSON body."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(error, RequestRejected):
        status = error.status
        headers.update(error.headers)
    elif isinstance(error, InvalidRequestError):
        status = 400
        if error.target:
            extra["target"] = error.target
    elif isinstance(error, UnauthenticatedError):
        status = 401
        if error.www_authenticate:
            headers["WWW-Authenticate"] = error.www_authenticate
    elif isinstance(error, ForbiddenError):
        status = 403
    elif isinstance(error, NotFoundError):
        status = 404
    elif isinstance(error, ThrottledError):
        status = 429
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, UnavailableError):
        status = 503
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, (SettingsError, MisconfiguredError)):
        # Details (which setting) go to the log only; the caller gets a correlation id.
        logger.error("misconfigured correlation_id=%s: %s", correlation_id, error.message)
        return json_response(
            500,
            error_body("misconfigured", "The service is misconfigured; the operator has been told.", correlationId=correlation_id),
        )
    else:
        status = 500
    return json_response(status, error_body(error.code, error.message, **extra), headers)


# --------------------------------------------------------------------------- request bodies


#: what read_json returns for an optional, empty body
NO_BODY: Any = object()


def read_json(req: func.HttpRequest, *, required: bool) -> Any:
    """The body as any JSON value; NO_BODY when optional and empty. Raises precise 4xx errors."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected(413, "body_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    if not body.strip():
        if required:
            raise InvalidRequestError("A JSON body is required.", code="missing_body")
        return NO_BODY
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise RequestRejected(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequestError("The request body is not valid JSON.", code="invalid_json") from None


def read_json_object(req: func.HttpRequest, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object; {} when optional and empty."""
    value = read_json(req, required=required)
    if value is NO_BODY:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_body")
    return value


def reject_unknown_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field(s): {', '.join(unknown)[:200]}. Allowed: {', '.join(sorted(allowed))}.", code="unknown_field"
        )


# --------------------------------------------------------------------------- the wrapper


def hash_user(key: str) -> str:
    """A short, stable, non-reversible user reference for logs."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class RequestContext:
    """What a handler may tell the wrapper for its log line."""

    correlation_id: str
    user_ref: str | None = None


Handler = Callable[[func.HttpRequest, RequestContext], Awaitable[func.HttpResponse]]


def api_endpoint(name: str, methods: tuple[str, ...]) -> Callable[[Handler], Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]]:
    """Wrap a handler: method check, error mapping, correlation id, one log line."""

    def decorate(handler: Handler) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
        async def endpoint(req: func.HttpRequest) -> func.HttpResponse:
            started = time.perf_counter()
            ctx = RequestContext(correlation_id=uuid.uuid4().hex)
            try:
                if req.method.upper() not in methods:
                    raise RequestRejected(
                        405, "method_not_allowed", f"Use {' or '.join(methods)} for this endpoint.", {"Allow": ", ".join(methods)}
                    )
                response = await handler(req, ctx)
            except ServiceError as error:
                response = error_response(error, ctx.correlation_id)
            except Exception:  # noqa: BLE001 - the trace goes to the log, never to the caller
                logger.exception("unhandled error in %s correlation_id=%s", name, ctx.correlation_id)
                response = json_response(
                    500,
                    error_body("internal_error", "Something went wrong on our side.", correlationId=ctx.correlation_id),
                )
            response.headers["X-Correlation-Id"] = ctx.correlation_id
            latency_ms = (time.perf_counter() - started) * 1000
            logger.info(
                "request function=%s method=%s status=%d latency_ms=%.1f user=%s correlation_id=%s",
                name,
                req.method.upper(),
                response.status_code,
                latency_ms,
                ctx.user_ref or "-",
                ctx.correlation_id,
            )
            record_request(name, response.status_code, latency_ms)
            return response

        # Not functools.wraps: the Functions worker binds parameters from the signature,
        # which must stay (req) and not follow __wrapped__ to the handler's (req, ctx).
        endpoint.__name__ = handler.__name__
        endpoint.__qualname__ = handler.__qualname__
        endpoint.__doc__ = handler.__doc__
        endpoint.allowed_methods = methods  # type: ignore[attr-defined]  # read by the OpenAPI test
        return endpoint

    return decorate
