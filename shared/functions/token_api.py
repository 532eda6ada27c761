"""The token API: the routes a frontend calls, as one Blueprint.

Each handler authenticates the caller (identity comes only from verified
authentication, never from the body), validates the body, calls the
:class:`~shared.domain.token_service.TokenService`, and answers JSON. Routes accept
every method; the wrapper answers 405 for the wrong one (see ``shared.functions.http``).
"""

from __future__ import annotations

import functools
from typing import Any

import azure.functions as func

from shared.composition import Services
from shared.domain.caller import Caller
from shared.domain.clock import format_utc
from shared.domain.errors import NotFoundError, ServiceError
from shared.domain.policy import parse_token_request
from shared.domain.token_service import Completion
from shared.domain.validation import reject_unknown_fields, required_guid, required_string
from shared.functions.bodies import read_json_object
from shared.functions.http import RequestContext, http_function, json_response

#: The app authenticates callers itself (AUTH_MODE), so the host lets every request through.
APP_AUTHENTICATES = func.AuthLevel.ANONYMOUS
TEAMS_FIELDS = frozenset({"teamsToken", "clientId", "userObjectId"})
MAX_TEAMS_TOKEN_CHARS = 8 * 1024


async def authenticate(services: Services, req: func.HttpRequest, ctx: RequestContext) -> Caller:
    """The verified caller; its keyed reference goes into the request's log line."""
    caller = await services.authenticator().authenticate(req.headers)
    references = services.user_refs()  # a bad USER_REF_KEY is a setting error now, not a silent log gap
    ctx.user_ref_later = functools.partial(references.ref, caller.key)
    return caller


def completion_response(completion: Completion, what: str) -> func.HttpResponse:
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


def health_report(services: Services) -> tuple[bool, dict[str, Any]]:
    """Readiness of configuration, without values: which settings groups load, and how ACS is reached."""
    checks: dict[str, Any] = {}
    healthy = True
    for name, load in (
        ("acs", lambda: services.acs_settings),
        ("storage", lambda: services.storage_settings),
        ("auth", lambda: services.auth_settings),
        ("tokenPolicy", lambda: services.token_policy),
    ):
        try:
            load()
            checks[name] = "ok"
        except ServiceError as error:
            checks[name] = error.message
            healthy = False
    if checks["acs"] == "ok":
        checks["acsCredential"] = "connection_string" if services.acs_settings.uses_connection_string else "entra_id"
    if checks["auth"] == "ok":
        checks["authMode"] = services.auth_settings.mode
    return healthy, checks


def token_api(services: Services) -> func.Blueprint:
    """``/api/token``, ``/token/refresh``, ``/token/revoke``, ``/token/teams``, ``/identity``, ``/health``."""
    bp = func.Blueprint()

    @http_function(bp, "issue_token", "token", "POST", APP_AUTHENTICATES, services.metrics)
    async def issue_token(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/token: get-or-create the caller's ACS identity and issue a token."""
        caller = await authenticate(services, req, ctx)
        request = parse_token_request(read_json_object(req, required=False), services.token_policy)
        grant = await services.token_service().issue(caller, request)
        return json_response(200, grant.to_json())

    @http_function(bp, "refresh_token", "token/refresh", "POST", APP_AUTHENTICATES, services.metrics)
    async def refresh_token(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/token/refresh: a new token for the caller's existing identity."""
        caller = await authenticate(services, req, ctx)
        request = parse_token_request(read_json_object(req, required=False), services.token_policy)
        try:
            grant = await services.token_service().refresh(caller, request)
        except NotFoundError:
            raise NotFoundError("This user has no ACS identity yet; call POST /api/token first.") from None
        return json_response(200, grant.to_json())

    @http_function(bp, "revoke_tokens", "token/revoke", "POST", APP_AUTHENTICATES, services.metrics)
    async def revoke_tokens(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/token/revoke: revoke every token of the caller's identity."""
        caller = await authenticate(services, req, ctx)
        read_json_object(req, required=False)  # still reject oversized or non-JSON bodies
        return completion_response(await services.token_service().revoke(caller), "revocation")

    @http_function(bp, "delete_identity", "identity", "DELETE", APP_AUTHENTICATES, services.metrics)
    async def delete_identity(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """DELETE /api/identity: delete the caller's ACS identity and mapping."""
        caller = await authenticate(services, req, ctx)
        read_json_object(req, required=False)
        return completion_response(await services.token_service().delete(caller), "deletion")

    @http_function(bp, "exchange_teams_token", "token/teams", "POST", APP_AUTHENTICATES, services.metrics)
    async def exchange_teams_token(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/token/teams: exchange a Teams user's Entra ID token for an ACS token."""
        caller = await authenticate(services, req, ctx)
        body = read_json_object(req, required=True)
        reject_unknown_fields(body, TEAMS_FIELDS)
        teams_token = required_string(body, "teamsToken", max_chars=MAX_TEAMS_TOKEN_CHARS)
        client_id = required_guid(body, "clientId")
        user_object_id = required_guid(body, "userObjectId")
        token = await services.token_service().exchange_teams_token(caller, teams_token, client_id, user_object_id)
        return json_response(200, {"token": token.token, "expiresOn": format_utc(token.expires_on)})

    @http_function(bp, "health", "health", "GET", APP_AUTHENTICATES, services.metrics)
    async def health(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """GET /api/health: liveness plus configuration readiness, without secrets."""
        healthy, checks = health_report(services)
        return json_response(200 if healthy else 503, {"status": "ok" if healthy else "unhealthy", "checks": checks})

    return bp
