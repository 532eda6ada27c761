"""Azure Functions entry point: the routes of the ACS trusted token service.

Each function is thin: parse the request, call ``shared/``, answer. The
shared pieces (settings, ACS client, identity map, caller authentication)
are created once per worker process on first use, never per request.
"""

from __future__ import annotations

import azure.functions as func

from shared import api
from shared.http import ALL_METHODS
from shared.revocation import api as revocation_api
from shared.revocation import triggers as revocation
from shared.telemetry import configure_telemetry

configure_telemetry()  # exports to Application Insights only when APPLICATIONINSIGHTS_CONNECTION_STRING is set

# Authentication is the app's own (Easy Auth, OpenID Connect bearer tokens or dev
# headers, see AUTH_MODE), so the routes are anonymous at the host level.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.function_name("issue_token")
@app.route(route="token", methods=ALL_METHODS)
async def issue_token(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/token: get-or-create the caller's ACS identity and issue a token."""
    return await api.issue_token(req)


@app.function_name("refresh_token")
@app.route(route="token/refresh", methods=ALL_METHODS)
async def refresh_token(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/token/refresh: a new token for the caller's existing identity."""
    return await api.refresh_token(req)


@app.function_name("revoke_tokens")
@app.route(route="token/revoke", methods=ALL_METHODS)
async def revoke_tokens(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/token/revoke: revoke every token of the caller's identity."""
    return await api.revoke_tokens(req)


@app.function_name("exchange_teams_token")
@app.route(route="token/teams", methods=ALL_METHODS)
async def exchange_teams_token(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/token/teams: exchange a Teams user's Entra ID token for an ACS token."""
    return await api.exchange_teams_token(req)


@app.function_name("delete_identity")
@app.route(route="identity", methods=ALL_METHODS)
async def delete_identity(req: func.HttpRequest) -> func.HttpResponse:
    """DELETE /api/identity: delete the caller's ACS identity and mapping."""
    return await api.delete_identity(req)


@app.function_name("health")
@app.route(route="health", methods=ALL_METHODS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: liveness plus configuration readiness, without secrets."""
    return await api.health(req)


# --------------------------------------------------------------------------- revocation


@app.function_name("revocation_sweep")
@app.timer_trigger(arg_name="timer", schedule="%REVOCATION_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def revocation_sweep(timer: func.TimerRequest) -> None:
    """Every REVOCATION_SCHEDULE: do recorded requests, then the max-session-age and retention policies."""
    await revocation.run_timer(past_due=timer.past_due)


@app.function_name("revocation_batch")
@app.queue_trigger(arg_name="message", queue_name="%REVOCATION_QUEUE_NAME%", connection="AzureWebJobsStorage")
async def revocation_batch(message: func.QueueMessage) -> None:
    """A batch fanned out by the sweep when its backlog is bigger than one run."""
    await revocation.run_batch(message.get_body(), message.dequeue_count)


@app.function_name("request_revocations")
@app.route(route="ops/revocations", methods=ALL_METHODS, auth_level=func.AuthLevel.FUNCTION)
async def request_revocations(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/ops/revocations (function key): record revocation requests; 202."""
    return await revocation_api.request_revocations(req)


@app.function_name("revocation_status")
@app.route(route="ops/revocations/status", methods=ALL_METHODS, auth_level=func.AuthLevel.FUNCTION)
async def revocation_status(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/ops/revocations/status (function key): the last sweep run and what is pending."""
    return await revocation_api.revocation_status(req)
