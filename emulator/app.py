"""The emulator's HTTP surface: the ACS Identity REST API plus the /_emulator control endpoints."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from emulator.errors import AcsError, identity_not_found
from emulator.faults import Faults
from emulator.hmac_auth import check_auth
from emulator.limits import RateLimits
from emulator.msi import msi_token
from emulator.state import Identity, MemoryState
from emulator.tokens import TokenSigner, decode_unverified, format_expires_on
from emulator.validation import MAX_MINUTES, parse_json, parse_minutes, parse_scopes

API_VERSION = "2023-10-01"
#: the stable versions whose wire format 2023-10-01 is a superset of
API_VERSIONS = frozenset({"2021-03-07", "2022-06-01", "2022-10-01", "2023-08-01", API_VERSION})
TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"


@dataclass
class Emulator:
    access_key: str
    signer: TokenSigner
    state: MemoryState
    limits: RateLimits
    faults: Faults
    identity_header: str
    resource_name: str = "acs-emulator"
    rng: random.Random = field(default_factory=random.Random)
    operations: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    def new_identity_id(self) -> str:
        return f"8:acs:{self.signer.resource_id}_{uuid.uuid4()}"

    def live_identity(self, identity_id: str) -> Identity:
        identity = self.state.get(identity_id)
        if identity is None or identity.deleted:
            raise identity_not_found(identity_id)
        return identity

    def issue(self, identity: Identity, scopes: list[str], minutes: float) -> dict[str, str]:
        token, expires = self.signer.mint(identity.id, scopes, minutes, identity.generation)
        return {"token": token, "expiresOn": format_expires_on(expires)}

    def validate(self, token: str) -> dict[str, Any]:
        """What a relying service would conclude about an access token the emulator issued."""
        verdict: dict[str, Any] = {"valid": False, "reason": None, "communicationUserId": None, "scopes": [], "expiresOn": None}
        try:
            claims = self.signer.verify(token)
        except jwt.InvalidSignatureError:  # a DecodeError subclass: catch it first
            verdict["reason"] = "bad_signature"
            return verdict
        except jwt.DecodeError:
            verdict["reason"] = "malformed"
            return verdict
        except jwt.PyJWTError:  # e.g. another algorithm
            verdict["reason"] = "bad_signature"
            return verdict
        if not isinstance(claims.get("skypeid"), str) or not isinstance(claims.get("exp"), (int, float)):
            verdict["reason"] = "malformed"
            return verdict
        identity_id = "8:" + claims["skypeid"]
        verdict.update(
            communicationUserId=identity_id,
            scopes=[s for s in str(claims.get("acsScope", "")).split(",") if s],
            expiresOn=format_expires_on(claims["exp"]),
        )
        identity = self.state.get(identity_id)
        if claims["exp"] <= time.time():
            verdict["reason"] = "expired"
        elif identity is None:
            verdict["reason"] = "unknown_identity"  # e.g. after POST /_emulator/reset?state=true
        elif identity.deleted:
            verdict["reason"] = "identity_deleted"
        elif claims.get("gen") != identity.generation:
            verdict["reason"] = "revoked"
        else:
            verdict["valid"] = True
        return verdict


# ---------------------------------------------------------------------- the ACS Identity API


def route(method: str, path: str) -> tuple[str, str | None]:
    """(operation, identity id) for an API request; 404 for anything else."""
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
        # faults act like a front end: before authentication and validation
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
        if version not in API_VERSIONS:
            raise AcsError(
                400, "UnsupportedApiVersion", f"api-version '{version}' is not supported; use one of {sorted(API_VERSIONS)}."
            )
        check_auth(request, body, emulator.access_key, emulator.signer)
        wait = emulator.limits.check(operation)
        if wait is not None:
            raise AcsError(
                429, "TooManyRequests", f"Rate limit exceeded for operation '{operation}' on this resource.", retry_after=wait
            )
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
            raise identity_not_found(identity_id or "")
        if not identity.deleted:  # deleting a deleted identity is a no-op 204 (idempotent DELETE)
            emulator.state.delete(identity)
        return web.Response(status=204)
    if operation == "teams":
        return web.json_response(exchange_teams(emulator, payload))
    raise AcsError(404, "NotFound", "Unknown operation.")


def exchange_teams(emulator: Emulator, payload: dict[str, Any]) -> dict[str, str]:
    """No Entra ID here: check the Teams user's token claims (not its signature) the way ACS does."""
    token, app_id, user_id = payload.get("token"), payload.get("appId"), payload.get("userId")
    for name, value in (("Token", token), ("AppId", app_id), ("UserId", user_id)):
        if not isinstance(value, str) or not value:
            raise AcsError(400, "ValidationError", f"{name} is required.", target=name)
    invalid = AcsError(401, "InvalidAccessToken", "Provided access token is not valid.")
    try:
        claims = decode_unverified(token)
    except (IndexError, ValueError, TypeError):
        raise invalid from None
    if (
        not isinstance(claims, dict)
        or str(claims.get("aud", "")).rstrip("/") != TEAMS_AUDIENCE
        or claims.get("oid") != user_id
        or (claims.get("appid") or claims.get("azp")) != app_id
        or not isinstance(claims.get("exp"), (int, float))
        or claims["exp"] <= time.time()
    ):
        raise invalid
    identity_id = f"8:orgid:{user_id}"
    identity = emulator.state.get(identity_id) or emulator.state.add(identity_id)
    # the ACS token lives as long as the Entra ID token it came from (at most 24 h)
    minutes = min(MAX_MINUTES, (claims["exp"] - time.time()) / 60)
    return emulator.issue(identity, ["voip"], minutes)


# ---------------------------------------------------------------------- control endpoints (no auth)


async def validate(request: web.Request) -> web.Response:
    try:
        payload = parse_json(await request.read())
    except AcsError as error:
        return error.response()
    return web.json_response(request.app["emulator"].validate(str(payload.get("token", ""))))


async def faults(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    if request.method == "PUT":
        try:
            emulator.faults.update(parse_json(await request.read()))
        except AcsError as error:
            return error.response()
        except ValueError as error:
            return AcsError(400, "InvalidFaults", str(error)).response()
    return web.json_response(emulator.faults.as_dict())


async def limits(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    if request.method == "PUT":
        try:
            changes = parse_json(await request.read())
        except AcsError as error:
            return error.response()
        for operation, spec in changes.items():
            count = spec.get("count") if isinstance(spec, dict) else None
            window = spec.get("windowSeconds") if isinstance(spec, dict) else None
            if (
                operation not in emulator.limits.limits
                or isinstance(count, bool)
                or not isinstance(count, int)
                or count < 0
                or (window is not None and (isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0))
            ):
                known = ", ".join(emulator.limits.limits)
                return AcsError(
                    400,
                    "InvalidLimits",
                    f'bad limit for {operation!r}: use {{"count": N, "windowSeconds"?: S}} for one of {known}',
                ).response()
        for operation, spec in changes.items():
            emulator.limits.set(operation, spec["count"], spec.get("windowSeconds"))
        emulator.limits.reset()
    return web.json_response(emulator.limits.describe())


async def stats(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    return web.json_response(
        {
            "resource": emulator.resource_name,
            "resourceId": emulator.signer.resource_id,
            "operations": dict(emulator.operations),
            "statuses": dict(emulator.statuses),
            "identities": emulator.state.count(),
        }
    )


async def reset(request: web.Request) -> web.Response:
    """Clear counters, faults and rate-limit windows; identities too with ?state=true or {"state": true}."""
    emulator: Emulator = request.app["emulator"]
    try:
        payload = parse_json(await request.read())
    except AcsError as error:
        return error.response()
    emulator.operations.clear()
    emulator.statuses.clear()
    emulator.faults = Faults()
    emulator.limits.reset()
    if request.query.get("state") == "true" or payload.get("state") is True:
        emulator.state.clear()
    return web.Response(status=204)


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
