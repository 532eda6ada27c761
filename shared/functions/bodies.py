"""JSON request bodies: size, media type and shape checked before anything else reads them."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.domain.errors import InvalidRequestError
from shared.domain.validation import nested_deeper_than
from shared.functions.http import RequestRejected

#: Token requests are tiny; anything bigger is a mistake or an attack.
MAX_BODY_BYTES = 16 * 1024


class _NoBody:
    """The type of :data:`NO_BODY`."""

    def __repr__(self) -> str:
        return "NO_BODY"


#: what read_json returns for an optional, empty body
NO_BODY = _NoBody()


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
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequestError("The request body is not valid JSON.", code="invalid_json") from None
    if nested_deeper_than(value):
        raise InvalidRequestError("The request body is not valid JSON here: it is nested too deeply.", code="invalid_json")
    return value


def read_json_object(req: func.HttpRequest, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object; {} when optional and empty."""
    value = read_json(req, required=required)
    if value is NO_BODY:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_body")
    return value
