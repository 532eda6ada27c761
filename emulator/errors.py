"""ACS's error answer: ``{"error": {"code", "message", "target"?}}``, JSON, optional Retry-After."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class AcsError(Exception):
    """Raised anywhere in request handling; becomes the HTTP answer ACS would give."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target, self.retry_after = status, code, message, target, retry_after

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


def identity_not_found(identity_id: str) -> AcsError:
    # "Provided identity doesn't exist." is the real service's message (seen in SDK test logs)
    return AcsError(404, "IdentityNotFound", f"Provided identity doesn't exist. Id: '{identity_id}'.")
