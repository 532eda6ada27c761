"""The ACS Identity REST API: routing, the order of checks, the operations, and the headers real ACS sends."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.errors import AcsError
from emulator.hmac_auth import check_auth
from emulator.references import (
    FIXED_HEADERS,
    IDENTITY_API_VERSIONS,
    NOT_IMPLEMENTED_API_VERSIONS,
    SUCCESS_CONTENT_TYPE,
    TEAMS_API_VERSIONS,
)
from emulator.service import Emulator
from emulator.teams import verify_exchange
from emulator.validation import MAX_MINUTES, parse_json, parse_minutes, parse_scopes, require_scopes


@dataclass
class Outcome:
    """An operation's answer and the identity it concerned (for the call log)."""

    response: web.Response
    identity_id: str | None


def route(method: str, path: str) -> tuple[str, str | None]:
    """(operation, identity id) for an API request; 404 for anything else (our choice of code)."""
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


def supported_versions(operation: str) -> tuple[str, ...]:
    return TEAMS_API_VERSIONS if operation == "teams" else IDENTITY_API_VERSIONS


def ms_cv() -> str:
    """A correlation vector as ACS sends it: 22 base64 characters and ``.0`` (e.g. ``W6/fys8TZkC0zCewat+4lQ.0``)."""
    return base64.b64encode(secrets.token_bytes(16)).decode().rstrip("=") + ".0"


def json_answer(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, content_type=SUCCESS_CONTENT_TYPE.split(";")[0])


def add_service_headers(request: web.Request, response: web.Response, started: float) -> None:
    """Headers on every recorded answer: MS-CV, the client request id echoed, and ACS's fixed ones."""
    response.headers["MS-CV"] = ms_cv()
    client_request_id = request.headers.get("x-ms-client-request-id")
    if client_request_id:
        response.headers["x-ms-client-request-id"] = client_request_id
    response.headers.update(FIXED_HEADERS)
    response.headers["X-Processing-Time"] = f"{max(1, round((time.perf_counter() - started) * 1000))}ms"


async def api(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    started = time.perf_counter()
    body = await request.read()
    operation, identity_id = "unknown", None
    versions: tuple[str, ...] = ()
    try:
        operation, identity_id = route(request.method, request.path)
        versions = supported_versions(operation)
        await front_end(emulator, request, operation)
        check_auth(request, body, emulator.access_key, emulator.signer)
        wait = emulator.limits.check(operation)
        if wait is not None:
            raise AcsError(
                429, "TooManyRequests", f"Rate limit exceeded for operation '{operation}' on this resource.", retry_after=wait
            )
        outcome = handle(emulator, operation, identity_id, parse_json(body))
        response, identity_id = outcome.response, outcome.identity_id
        response.headers["api-supported-versions"] = ", ".join(versions)
    except AcsError as error:
        response = error.response()
        if error.from_operation and versions:
            response.headers["api-supported-versions"] = ", ".join(versions)
    emulator.record(operation, identity_id, response.status)
    add_service_headers(request, response, started)
    return response


async def front_end(emulator: Emulator, request: web.Request, operation: str) -> None:
    """Injected faults and the api-version check, before authentication (as a front end would)."""
    if emulator.faults.latencyMs:
        await asyncio.sleep(emulator.faults.latencyMs / 1000)
    injected = emulator.faults.pick(emulator.rng)
    if injected == 429:
        raise AcsError(
            429, "TooManyRequests", "Injected throttling (emulator fault).", retry_after=emulator.faults.retryAfterSeconds
        )
    if injected == 503:
        raise AcsError(
            503, "ServiceUnavailable", "Injected outage (emulator fault).", retry_after=emulator.faults.retryAfterSeconds
        )
    version = request.query.get("api-version")
    if not version:
        raise AcsError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
    if version in NOT_IMPLEMENTED_API_VERSIONS:
        raise AcsError(400, "UnsupportedApiVersion", f"api-version '{version}' is real but not implemented by the emulator.")
    if version not in supported_versions(operation):
        supported = ", ".join(v for v in supported_versions(operation) if v not in NOT_IMPLEMENTED_API_VERSIONS)
        raise AcsError(400, "UnsupportedApiVersion", f"api-version '{version}' is not supported; use one of {supported}.")


def handle(emulator: Emulator, operation: str, identity_id: str | None, payload: dict[str, Any]) -> Outcome:
    if operation == "create":
        return create(emulator, payload)
    if operation == "issue":
        scopes_value = require_scopes(payload)
        identity = emulator.owned_identity(identity_id or "")
        scopes = parse_scopes(scopes_value)
        token = emulator.issue(identity, scopes, parse_minutes(payload.get("expiresInMinutes")))
        return Outcome(json_answer(token), identity.id)
    if operation == "revoke":
        identity = emulator.owned_identity(identity_id or "")
        emulator.revoke(identity)
        return Outcome(web.Response(status=204), identity.id)
    if operation == "delete":
        identity = emulator.owned_identity(identity_id or "", allow_deleted=True)
        if not identity.deleted:  # deleting a deleted identity is a no-op 204 (idempotent DELETE; our choice)
            emulator.delete(identity)
        return Outcome(web.Response(status=204), identity.id)
    return exchange_teams(emulator, payload)


def create(emulator: Emulator, payload: dict[str, Any]) -> Outcome:
    scopes_value = payload.get("createTokenWithScopes")
    minutes = parse_minutes(payload.get("expiresInMinutes"))
    scopes = None if scopes_value is None else parse_scopes(scopes_value)
    identity = emulator.new_identity()
    answer: dict[str, Any] = {"identity": {"id": identity.id}}
    if scopes is not None:
        answer["accessToken"] = emulator.issue(identity, scopes, minutes)
    return Outcome(json_answer(answer, status=201), identity.id)


def exchange_teams(emulator: Emulator, payload: dict[str, Any]) -> Outcome:
    user = verify_exchange(payload)
    identity = emulator.state.get(user.identity_id) or emulator.state.add(user.identity_id)
    # the ACS token lives as long as the Entra ID token it came from (at most 24 h): our choice, see README
    minutes = min(MAX_MINUTES, (user.expires_at - time.time()) / 60)
    return Outcome(json_answer(emulator.issue(identity, ["voip"], minutes)), identity.id)
