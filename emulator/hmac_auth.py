"""Authenticating API requests: ACS's HMAC-SHA256 scheme, or a bearer token from the emulator's own issuer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

import jwt
from aiohttp import web

from emulator.errors import AcsError
from emulator.tokens import TokenSigner

SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
MAX_CLOCK_SKEW_SECONDS = 15 * 60


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def signature(access_key: str, string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(access_key), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _denied(message: str) -> AcsError:
    return AcsError(401, "Denied", f"Denied by the authentication policy: {message}")


def check_hmac(request: web.Request, body: bytes, access_key: str, now: float | None = None) -> None:
    """StringToSign = VERB\\npath_and_query\\nx-ms-date;host;x-ms-content-sha256, with the base64-decoded key.

    The sync SDK signs the path as sent (id percent-encoded), the async SDK the decoded one: both verify.
    """
    authorization = request.headers.get("Authorization", "")
    if not authorization.startswith("HMAC-SHA256 "):
        raise _denied("no HMAC-SHA256 or Bearer credentials.")
    params = dict(part.split("=", 1) for part in authorization[len("HMAC-SHA256 ") :].split("&") if "=" in part)
    if params.get("SignedHeaders", "").lower() != SIGNED_HEADERS:
        raise _denied(f"SignedHeaders must be {SIGNED_HEADERS}.")
    date = request.headers.get("x-ms-date", "")
    claimed_hash = request.headers.get("x-ms-content-sha256")
    host = request.headers.get("Host")
    if not date or claimed_hash is None or not host:
        raise _denied("x-ms-date, host and x-ms-content-sha256 headers are required.")
    try:
        moment = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise _denied("x-ms-date is malformed.") from None
    if moment.tzinfo is None:  # "-0000" parses naive; it means UTC
        moment = moment.replace(tzinfo=UTC)
    if abs((time.time() if now is None else now) - moment.timestamp()) > MAX_CLOCK_SKEW_SECONDS:
        raise _denied("x-ms-date is more than 15 minutes from the current time.")
    if not hmac.compare_digest(claimed_hash, content_hash(body)):
        raise _denied("x-ms-content-sha256 does not match the request body.")
    raw = request.raw_path
    for path_and_query in dict.fromkeys((raw, unquote(raw))):
        expected = signature(access_key, f"{request.method.upper()}\n{path_and_query}\n{date};{host};{claimed_hash}")
        if hmac.compare_digest(params.get("Signature", ""), expected):
            return
    raise _denied("the HMAC signature does not match.")


def check_auth(request: web.Request, body: bytes, access_key: str, signer: TokenSigner) -> None:
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        try:
            signer.verify_bearer(authorization[7:].strip())
        except jwt.PyJWTError:
            raise AcsError(401, "InvalidAuthenticationToken", "The bearer token is invalid, expired or not for ACS.") from None
        return
    check_hmac(request, body, access_key)
