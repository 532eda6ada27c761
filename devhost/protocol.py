"""The HTTP/1.1 connection layer: aiohttp's parser with the Functions host's limits, and quiet rejections.

aiohttp answers a request its parser rejects (a header line over its 8,190-byte default, a bad
method, a malformed chunk) from ``RequestHandler.handle_error``: it logs an ERROR with a
traceback (the exception's text quotes the first 100 bytes of the offending line, such as
``Bearer eyJ...``) and echoes that text as the ``text/plain`` 400 body. Here the parser runs with
the limits the Functions host has (``devhost.limits``), and a rejected request gets a short JSON
answer and one log line that quotes nothing from the request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from devhost.limits import MAX_REQUEST_HEADER_COUNT, MAX_REQUEST_HEADERS_TOTAL_BYTES, MAX_REQUEST_LINE_BYTES
from devhost.rejections import Rejection, rejected

logger = logging.getLogger("devhost")

#: What the parser enforces on its own: the request target, one header field (name and value),
#: the number of headers. The request line, the header total and the header count are checked
#: exactly once a request is parsed (``devhost.server``); these bounds only keep the parser from
#: holding more. The header count has slack because aiohttp's pure-Python parser (used without
#: its C extension) also counts the request line and the blank line. The two sizes differ, which
#: is how a LineTooLong is told apart (it carries the limit it hit).
PARSER_LIMITS: dict[str, int] = {
    "max_line_size": MAX_REQUEST_LINE_BYTES,
    "max_field_size": MAX_REQUEST_HEADERS_TOTAL_BYTES,
    "max_headers": MAX_REQUEST_HEADER_COUNT + 2,
}

REQUEST_LINE_TOO_LONG = Rejection(
    414, "request_line_too_long", f"The request line is longer than {MAX_REQUEST_LINE_BYTES} bytes."
)
HEADERS_TOO_LARGE = Rejection(
    431, "request_headers_too_large", f"The request headers are larger than {MAX_REQUEST_HEADERS_TOTAL_BYTES} bytes in total."
)
TOO_MANY_HEADERS = Rejection(431, "too_many_request_headers", f"The request has more than {MAX_REQUEST_HEADER_COUNT} headers.")
MALFORMED = Rejection(400, "malformed_request", "The request is not valid HTTP/1.1.")
INVALID_HOST = Rejection(400, "invalid_host", "The Host header is not a valid host.")  # Kestrel: InvalidHostHeader, 400
INTERNAL = Rejection(500, "internal_error", "The local host failed; see its log.")


def classify(error: BaseException | None) -> Rejection:
    """The answer for what the parser raised, mapped as Kestrel maps its own rejections."""
    if isinstance(error, LineTooLong):
        limit = error.args[1] if len(error.args) > 1 else None
        return REQUEST_LINE_TOO_LONG if limit == MAX_REQUEST_LINE_BYTES else HEADERS_TOO_LARGE
    if isinstance(error, BadHttpMessage) and "too many headers" in error.message.lower():
        return TOO_MANY_HEADERS
    return MALFORMED


class QuietRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering rejected requests without tracebacks or echoes."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # part of an answer went out already: nothing more can be sent
            raise ConnectionError("the response had started when the request failed")
        if isinstance(exc, HttpProcessingError):
            return rejected(classify(exc), request.remote)
        # Not the client's fault (the dispatcher catches what functions raise): a devhost bug.
        logger.error("devhost failed handling a request from %s", request.remote, exc_info=exc)
        return INTERNAL.response()


class DevHostServer(web.Server):
    """aiohttp's low-level server, with QuietRequestHandler for every connection."""

    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], **kwargs: Any) -> None:
        super().__init__(handler, **{**PARSER_LIMITS, "access_log": None, **kwargs})

    def __call__(self) -> web.RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)
