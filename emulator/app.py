"""The emulator's HTTP surface: the ACS Identity REST API plus a few /_emulator control endpoints."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import jwt
from aiohttp import web

from emulator.faults import Faults
from emulator.limits import RateLimits
from emulator.state import MemoryState
from emulator.tokens import TokenSigner, decode_unverified, format_expires_on

SCOPES = frozenset({"chat", "voip", "chat.join", "chat.join.limited", "voip.join"})
API_VERSIONS = frozenset({"2021-03-07", "2022-06-01", "2022-10-01", "2023-08-01", "2023-10-01"})
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 60, 1440, 1440
MAX_CLOCK_SKEW_SECONDS = 15 * 60
TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"


class AcsError(Exception):
    """An answer in ACS's error format."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target, self.retry_after = status, code, message, target, retry_after

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


@dataclass
class Emulator:
    access_key: str
    signer: TokenSigner
    state: MemoryState
    limits: RateLimits
    faults: Faults
    identity_header: str
    rng: random.Random = field(default_factory=random.Random)
    operations: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    # ------------------------------------------------------------------ authentication

    def check_auth(self, request: web.Request, body: bytes) -> None:
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            try:
                self.signer.verify_bearer(authorization[7:].strip())
            except jwt.PyJWTError:
                raise AcsError(401, "InvalidAuthenticationToken", "The bearer token is invalid or expired.") from None
            return
        if not authorization.startswith("HMAC-SHA256 "):
            raise AcsError(401, "Denied", "Denied by the authentication policy: no HMAC-SHA256 or bearer credentials.")
        params = dict(part.split("=", 1) for part in authorization[len("HMAC-SHA256 "):].split("&") if "=" in part)
        if params.get("SignedHeaders", "").lower() != "x-ms-date;host;x-ms-content-sha256":
            raise AcsError(401, "Denied", "SignedHeaders must be x-ms-date;host;x-ms-content-sha256.")
        date = request.headers.get("x-ms-date", "")
        content_hash = request.headers.get("x-ms-content-sha256", "")
        try:
            skew = abs(time.time() - parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError):
            raise AcsError(401, "Denied", "x-ms-date is missing or malformed.") from None
        if skew > MAX_CLOCK_SKEW_SECONDS:
            raise AcsError(401, "Denied", "x-ms-date is too far from the current time.")
        actual_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if not hmac.compare_digest(content_hash, actual_hash):
            raise AcsError(401, "Denied", "x-ms-content-sha256 does not match the body.")
        key = base64.b64decode(self.access_key)
        host = request.headers.get("Host", "")
        raw = request.raw_path  # the sync SDK signs the path as sent; the async one signs it decoded
        for path_and_query in dict.fromkeys((raw, unquote(raw))):
            string_to_sign = f"{request.method.upper()}\n{path_and_query}\n{date};{host};{content_hash}"
            expected = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
            if hmac.compare_digest(params.get("Signature", ""), expected):
                return
        raise AcsError(401, "Denied", "The HMAC signature does not match.")

    # ------------------------------------------------------------------ helpers

    def new_identity_id(self) -> str:
        return f"8:acs:{self.signer.resource_id}_{uuid.uuid4()}"

    def live_identity(self, identity_id: str):
        identity = self.state.get(identity_id)
        if identity is None or identity.deleted:
            raise AcsError(404, "IdentityNotFound", f"Identity with id '{identity_id}' was not found.")
        return identity

    def issue(self, identity, scopes: list[str], minutes: int) -> dict[str, str]:
        token, expires = self.signer.mint(identity.id, scopes, minutes, identity.generation)
        return {"token": token, "expiresOn": format_expires_on(expires)}

    def validate(self, token: str) -> dict[str, Any]:
        verdict: dict[str, Any] = {"valid": False, "reason": None, "communicationUserId": None, "scopes": [], "expiresOn": None}
        try:
            claims = self.signer.verify(token)
        except jwt.DecodeError:
            verdict["reason"] = "malformed"
            return verdict
        except jwt.PyJWTError:
            verdict["reason"] = "bad_signature"
            return verdict
        identity_id = "8:" + claims["skypeid"]
        verdict.update(
            communicationUserId=identity_id,
            scopes=[s for s in claims.get("acsScope", "").split(",") if s],
            expiresOn=format_expires_on(claims["exp"]),
        )
        identity = self.state.get(identity_id)
        if claims["exp"] <= time.time():
            verdict["reason"] = "expired"
        elif identity is not None and identity.deleted:
            verdict["reason"] = "identity_deleted"
        elif identity is None or claims.get("gen") != identity.generation:
            verdict["reason"] = "revoked" if identity is not None else "unknown_identity"
        else:
            verdict["valid"] = True
        return verdict


def parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AcsError(400, "InvalidRequestBody", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise AcsError(400, "InvalidRequestBody", "The request body must be a JSON object.")
    return value


def parse_scopes(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise AcsError(400, "ValidationError", "Scopes must be a non-empty list.", target="Scopes")
    for scope in value:
        if scope not in SCOPES:
            raise AcsError(400, "ValidationError", f"Scope '{scope}' is not supported.", target="Scopes")
    return list(dict.fromkeys(value))


def parse_minutes(value: Any) -> int:
    if value is None:
        return DEFAULT_MINUTES
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MINUTES <= value <= MAX_MINUTES:
        raise AcsError(
            400,
            "ValidationError",
            f"ExpiresInMinutes value {value} is invalid. Value must be within the [{MIN_MINUTES}, {MAX_MINUTES}] interval.",
            target="ExpiresInMinutes",
        )
    return value


def route(method: str, path: str) -> tuple[str, str | None]:
    """(operation, identity id) for an API request; raises 404/405 for anything else."""
    parts = path.strip("/").split("/")
    if parts == ["identities"] and method == "POST":
        return "create", None
    if parts == ["teamsUser", ":exchangeAccessToken"] and method == "POST":
        return "teams", None
    if len(parts) == 2 and parts[0] == "identities" and method == "DELETE":
        return "delete", parts[1]
    if len(parts) == 3 and parts[0] == "identities" and method == "POST":
        action = {":issueAccessToken": "issue", ":revokeAccessTokens": "revoke"}.get(parts[2])
        if action:
            return action, parts[1]
    raise AcsError(404, "NotFound", f"No operation for {method} {path}.")


async def api(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    body = await request.read()
    operation = "unknown"
    try:
        operation, identity_id = route(request.method, request.path)
        if emulator.faults.latencyMs:
            await asyncio.sleep(emulator.faults.latencyMs / 1000)
        injected = emulator.faults.pick(emulator.rng)
        if injected == 429:
            raise AcsError(429, "TooManyRequests", "Injected throttling.", retry_after=emulator.faults.retryAfterSeconds)
        if injected == 503:
            raise AcsError(503, "ServiceUnavailable", "Injected outage.", retry_after=emulator.faults.retryAfterSeconds)
        if request.query.get("api-version") not in API_VERSIONS:
            raise AcsError(400, "UnsupportedApiVersion", f"api-version must be one of {sorted(API_VERSIONS)}.")
        emulator.check_auth(request, body)
        wait = emulator.limits.check(operation)
        if wait is not None:
            raise AcsError(429, "TooManyRequests", "Rate limit exceeded for this resource.", retry_after=wait)
        response = handle(emulator, operation, identity_id, parse_json(body))
    except AcsError as error:
        response = error.response()
    emulator.operations[operation] += 1
    emulator.statuses[f"{operation}:{response.status}"] += 1
    return response


def handle(emulator: Emulator, operation: str, identity_id: str | None, payload: dict[str, Any]) -> web.Response:
    if operation == "create":
        scopes = payload.get("createTokenWithScopes")
        minutes = parse_minutes(payload.get("expiresInMinutes"))
        if scopes is not None:
            scopes = parse_scopes(scopes)
        identity = emulator.state.add(emulator.new_identity_id())
        answer: dict[str, Any] = {"identity": {"id": identity.id}}
        if scopes is not None:
            answer["accessToken"] = emulator.issue(identity, scopes, minutes)
        return web.json_response(answer, status=201)
    if operation == "issue":
        identity = emulator.live_identity(identity_id or "")
        scopes = parse_scopes(payload.get("scopes"))
        return web.json_response(emulator.issue(identity, scopes, parse_minutes(payload.get("expiresInMinutes"))))
    if operation == "revoke":
        emulator.state.revoke(emulator.live_identity(identity_id or ""))
        return web.Response(status=204)
    if operation == "delete":
        identity = emulator.state.get(identity_id or "")
        if identity is None:
            raise AcsError(404, "IdentityNotFound", f"Identity with id '{identity_id}' was not found.")
        if not identity.deleted:
            emulator.state.delete(identity)
        return web.Response(status=204)
    if operation == "teams":
        return web.json_response(exchange_teams(emulator, payload))
    raise AcsError(404, "NotFound", "Unknown operation.")


def exchange_teams(emulator: Emulator, payload: dict[str, Any]) -> dict[str, str]:
    """No Entra ID here: check the token's claims (not its signature) the way ACS does."""
    token, app_id, user_id = payload.get("token"), payload.get("appId"), payload.get("userId")
    for name, value in (("Token", token), ("AppId", app_id), ("UserId", user_id)):
        if not isinstance(value, str) or not value:
            raise AcsError(400, "ValidationError", f"{name} is required.", target=name)
    try:
        claims = decode_unverified(token)
    except (IndexError, ValueError):
        raise AcsError(401, "InvalidAccessToken", "Provided access token is not valid.") from None
    if (
        str(claims.get("aud", "")).rstrip("/") != TEAMS_AUDIENCE
        or claims.get("oid") != user_id
        or (claims.get("appid") or claims.get("azp")) != app_id
        or not isinstance(claims.get("exp"), (int, float))
        or claims["exp"] <= time.time()
    ):
        raise AcsError(401, "InvalidAccessToken", "Provided access token is not valid.")
    identity_id = f"8:orgid:{user_id}"
    identity = emulator.state.get(identity_id) or emulator.state.add(identity_id)
    minutes = max(MIN_MINUTES, min(MAX_MINUTES, int((claims["exp"] - time.time()) // 60)))
    return emulator.issue(identity, ["voip"], minutes)


# ---------------------------------------------------------------------- control endpoints


async def validate(request: web.Request) -> web.Response:
    payload = parse_json(await request.read())
    return web.json_response(request.app["emulator"].validate(str(payload.get("token", ""))))


async def faults(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    if request.method == "PUT":
        try:
            emulator.faults.update(parse_json(await request.read()))
        except ValueError as error:
            return web.json_response({"error": {"code": "InvalidFaults", "message": str(error)}}, status=400)
    return web.json_response(emulator.faults.as_dict())


async def limits(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    if request.method == "PUT":
        for operation, spec in parse_json(await request.read()).items():
            if operation not in emulator.limits.limits or not isinstance(spec, dict) or not isinstance(spec.get("count"), int):
                return web.json_response({"error": {"code": "InvalidLimits", "message": f"bad limit for {operation!r}"}}, status=400)
            emulator.limits.set(operation, spec["count"], spec.get("windowSeconds"))
        emulator.limits.reset()
    return web.json_response(emulator.limits.describe())


async def stats(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    return web.json_response(
        {"operations": dict(emulator.operations), "statuses": dict(emulator.statuses), "identities": emulator.state.count()}
    )


async def reset(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    emulator.operations.clear()
    emulator.statuses.clear()
    emulator.faults = Faults()
    emulator.limits.reset()
    if request.query.get("state") == "true":
        emulator.state.clear()
    return web.Response(status=204)


async def msi_token(request: web.Request) -> web.Response:
    """App Service managed identity protocol (IDENTITY_ENDPOINT + X-IDENTITY-HEADER), as azure-identity calls it."""
    emulator: Emulator = request.app["emulator"]
    if not hmac.compare_digest(request.headers.get("X-IDENTITY-HEADER", ""), emulator.identity_header):
        return web.json_response({"error": "invalid_identity_header"}, status=401)
    resource = request.query.get("resource", "")
    if resource.rstrip("/").removesuffix("/.default").rstrip("/") != "https://communication.azure.com":
        return web.json_response({"error": "invalid_resource", "error_description": "only ACS is emulated"}, status=400)
    token, expires_on = emulator.signer.mint_bearer("https://communication.azure.com", request.query.get("client_id"))
    return web.json_response(
        {"access_token": token, "expires_on": str(expires_on), "resource": resource, "token_type": "Bearer"}
    )


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app["emulator"] = emulator
    app.router.add_post("/_emulator/validate", validate)
    app.router.add_route("GET", "/_emulator/faults", faults)
    app.router.add_route("PUT", "/_emulator/faults", faults)
    app.router.add_route("GET", "/_emulator/limits", limits)
    app.router.add_route("PUT", "/_emulator/limits", limits)
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/msi/token", msi_token)
    app.router.add_route("*", "/{tail:(?!_emulator/).*}", api)
    return app
