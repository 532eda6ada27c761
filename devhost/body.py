"""Reading a request body no larger than the host's limit, without buffering more than that.

The Functions host refuses a body over its limit (Kestrel: a ``Content-Length`` above the limit
is refused before a byte of the body is read; a chunked body is refused once what arrived passes
the limit). aiohttp's ``request.read()`` buffers up to ``client_max_size`` first, so four
concurrent 100 MB uploads cost the process about 500 MB before any function looked at them.
"""

from __future__ import annotations

from aiohttp import web

from devhost.limits import BODY_LIMIT_SETTING
from devhost.rejections import Rejection


class BodyRejected(Exception):
    """The body is over the limit or not valid HTTP framing; ``rejection`` is the answer."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.code)
        self.rejection = rejection


def too_large(limit: int) -> Rejection:
    return Rejection(
        413, "body_too_large", f"The request body is larger than the host's limit of {limit} bytes ({BODY_LIMIT_SETTING})."
    )


INVALID_BODY = Rejection(
    400, "malformed_body", "The request body does not match its framing (Content-Length or chunked encoding)."
)
#: The client closed the connection before its body was complete (Kestrel: UnexpectedEndOfRequestContent, 400).
#: Nobody reads the answer; what matters is one access line instead of a traceback per aborted upload.
INCOMPLETE_BODY = Rejection(400, "incomplete_body", "The connection closed before the whole request body arrived.")


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, or BodyRejected as soon as it is known to be over ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyRejected(too_large(limit))
    body = bytearray()
    try:
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise BodyRejected(too_large(limit))
    except web.RequestPayloadError:
        raise BodyRejected(INVALID_BODY) from None
    except ConnectionError:
        raise BodyRejected(INCOMPLETE_BODY) from None
    return bytes(body)
