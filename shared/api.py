"""The token API's HTTP handlers, one per function in ``function_app.py``.

Each handler authenticates the caller (identity comes only from verified
authentication, never from the body), validates the body, calls the
:class:`~shared.token_service.TokenService`, and answers JSON.
"""

from __future__ import annotations

import re
from typing import Any

import azure.functions as func

from shared import settings
from shared.acs import close_acs_service, get_acs_service
from shared.auth import Caller, close_authenticator, get_authenticator
from shared.errors import InvalidRequestError, ServiceError
from shared.http import RequestContext, api_endpoint, hash_user, json_response, read_json_object, reject_unknown_fields
from shared.identity_store import close_identity_store, get_identity_store
from shared.policy import parse_token_request
from shared.ratelimit import PerUserRateLimiter
from shared.revocation.runtime import close_revocation, get_ledger
from shared.token_service import Completion, TokenService, format_utc

_service: TokenService | None = None

TEAMS_FIELDS = frozenset({"teamsToken", "clientId", "userObjectId"})
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
MAX_TEAMS_TOKEN_CHARS = 8 * 1024


def get_token_service() -> TokenService:
    """The worker's one TokenService (and through it one ACS client and one table client)."""
    global _service
    if _service is None:
        _service = TokenService(
            acs=get_acs_service(),
            store=get_identity_store(),
            limiter=PerUserRateLimiter(settings.token_policy().per_user_per_minute),
            ledger=get_ledger(),
        )
    return _service


async def close_token_service() -> None:
    """Close the worker's clients (scripts and benchmarks that end their event loop)."""
    global _service
    _service = None
    await close_acs_service()
    await close_identity_store()
    await close_authenticator()
    await close_revocation()


async def _authenticate(req: func.HttpRequest, ctx: RequestContext) -> Caller:
    caller = await get_authenticator().authenticate(req.headers)
    ctx.user_ref = hash_user(caller.key)
    return caller


@api_endpoint("issue_token", ("POST",))
async def issue_token(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    caller = await _authenticate(req, ctx)
    request = parse_token_request(read_json_object(req, required=False), settings.token_policy())
    grant = await get_token_service().issue(caller, request)
    return json_response(200, grant.to_json())


@api_endpoint("refresh_token", ("POST",))
async def refresh_token(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    caller = await _authenticate(req, ctx)
    request = parse_token_request(read_json_object(req, required=False), settings.token_policy())
    grant = await get_token_service().refresh(caller, request)
    return json_response(200, grant.to_json())


@api_endpoint("revoke_tokens", ("POST",))
async def revoke_tokens(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    caller = await _authenticate(req, ctx)
    read_json_object(req, required=False)  # still reject oversized or non-JSON bodies
    return _completion_response(await get_token_service().revoke(caller), "revocation")


@api_endpoint("delete_identity", ("DELETE",))
async def delete_identity(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    caller = await _authenticate(req, ctx)
    read_json_object(req, required=False)
    return _completion_response(await get_token_service().delete(caller), "deletion")


@api_endpoint("exchange_teams_token", ("POST",))
async def exchange_teams_token(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    caller = await _authenticate(req, ctx)
    body = read_json_object(req, required=True)
    reject_unknown_fields(body, TEAMS_FIELDS)
    teams_token = _required_string(body, "teamsToken", MAX_TEAMS_TOKEN_CHARS)
    client_id = _required_guid(body, "clientId")
    user_object_id = _required_guid(body, "userObjectId")
    token = await get_token_service().exchange_teams_token(caller, teams_token, client_id, user_object_id)
    return json_response(200, {"token": token.token, "expiresOn": format_utc(token.expires_on)})


@api_endpoint("health", ("GET",))
async def health(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    """Readiness of configuration, without values: which settings groups load, and how ACS is reached."""
    checks: dict[str, Any] = {}
    healthy = True
    for name, load in (
        ("acs", settings.acs_settings),
        ("storage", settings.storage_settings),
        ("auth", settings.auth_settings),
        ("tokenPolicy", settings.token_policy),
    ):
        try:
            load()
            checks[name] = "ok"
        except ServiceError as error:
            checks[name] = error.message
            healthy = False
    if checks["acs"] == "ok":
        checks["acsCredential"] = "connection_string" if settings.acs_settings().uses_connection_string else "entra_id"
    if checks["auth"] == "ok":
        checks["authMode"] = settings.auth_settings().mode
    status = 200 if healthy else 503
    return json_response(status, {"status": "ok" if healthy else "unhealthy", "checks": checks})


def _completion_response(completion: Completion, what: str) -> func.HttpResponse:
    """204 when done (or nothing to do); 202 when ACS is busy and the recorded request will be finished by the sweep."""
    if completion is Completion.PENDING:
        return json_response(
            202,
            {
                "status": "pending",
                "message": f"ACS is busy right now; the {what} is recorded and the revocation sweep will complete it.",
            },
        )
    return json_response(204)


def _required_string(body: dict[str, Any], field: str, max_chars: int) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{field} must be a non-empty string.", code="invalid_body", target=field)
    if len(value) > max_chars:
        raise InvalidRequestError(f"{field} is longer than {max_chars} characters.", code="invalid_body", target=field)
    return value


def _required_guid(body: dict[str, Any], field: str) -> str:
    value = _required_string(body, field, 36)
    if not _GUID.match(value):
        raise InvalidRequestError(f"{field} must be a GUID.", code="invalid_body", target=field)
    return value
