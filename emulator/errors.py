"""ACS's error answer: ``{"error": {"code", "message", "target"?}}`` as ``application/json``, optional Retry-After."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emulator.references import ERROR_CONTENT_TYPE, IDENTITY_NOT_OWNED, REQUIRED_FIELD_MESSAGE


class AcsError(Exception):
    """Raised anywhere in request handling; becomes the HTTP answer ACS would give.

    ``from_operation`` says whether the operation itself answered (real ACS then adds ``api-supported-versions``)
    or an earlier stage did (request-model validation, the Teams token check, authentication, routing).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        target: str | None = None,
        retry_after: int | None = None,
        *,
        from_operation: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target
        self.retry_after = retry_after
        self.from_operation = from_operation

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        response = web.Response(status=self.status, body=json.dumps({"error": error}).encode(), content_type=ERROR_CONTENT_TYPE)
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


def identity_not_found(identity_id: str) -> AcsError:
    """An identity of this resource that does not exist (never created, or deleted): our choice, no recording shows it."""
    return AcsError(404, "IdentityNotFound", f"Provided identity doesn't exist. Id: '{identity_id}'.", from_operation=True)


def identity_not_owned() -> AcsError:
    """An identity of another ACS resource (references.IDENTITY_NOT_OWNED)."""
    code, message = IDENTITY_NOT_OWNED
    return AcsError(401, code, message, from_operation=True)


def required_field(field: str) -> AcsError:
    """A missing or empty required body field, rejected before the operation runs (references.REQUIRED_FIELD_MESSAGE)."""
    return AcsError(400, "ValidationError", REQUIRED_FIELD_MESSAGE.format(field=field), target=field)


def validation_error(message: str, target: str) -> AcsError:
    """A field value the operation itself rejects (it answers with api-supported-versions)."""
    return AcsError(400, "ValidationError", message, target=target, from_operation=True)
