"""Requests the host refuses before any function runs: a short JSON answer and one log line.

The answer has the app's error shape (``{"error": {"code", "message"}}``) so a client handles
it like the app's own 4xx. Neither the answer nor the log line quotes anything from the request
(a header value can be a bearer token, a path can carry control characters); the connection is
closed afterwards, as Kestrel does after rejecting a request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from aiohttp import web

logger = logging.getLogger("devhost")


@dataclass(frozen=True)
class Rejection:
    status: int
    code: str
    message: str

    def response(self) -> web.Response:
        body = json.dumps({"error": {"code": self.code, "message": self.message}}, separators=(",", ":"))
        response = web.Response(status=self.status, text=body, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        response.force_close()
        return response

    def log(self, remote: str | None) -> None:
        logger.warning("rejected a request from %s: %d %s", remote or "unknown", self.status, self.code)


def rejected(rejection: Rejection, remote: str | None) -> web.Response:
    """Log the rejection (one line) and build its answer."""
    rejection.log(remote)
    return rejection.response()
