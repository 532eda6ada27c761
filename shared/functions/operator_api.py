"""The operators' routes (function key; under ``/api/ops``), as one Blueprint.

Not ``/api/admin/...``: the Functions host refuses routes that start with ``admin``
(reserved for its own admin API), whatever the route prefix.

``POST /api/ops/revocations`` records requests durably and answers 202; the sweep
carries them out. ``GET /api/ops/revocations/status`` shows the last run.
"""

from __future__ import annotations

import re
from typing import Any

import azure.functions as func

from shared.composition import Services
from shared.domain.caller import user_key
from shared.domain.clock import parse_utc, utc_now
from shared.domain.errors import InvalidRequestError, NotFoundError
from shared.domain.models import ACTIONS, Action
from shared.domain.revocation.sweep import CHECKPOINT, LAST_BATCH, LAST_RUN
from shared.domain.validation import reject_unknown_fields, required_string, string_field
from shared.functions.bodies import read_json, read_json_object
from shared.functions.http import RequestContext, http_function, json_response
from shared.settings import AuthSettings

REQUEST_FIELDS = frozenset({"userId", "provider", "reason", "action"})
MAX_REQUESTS_PER_CALL = 100
MAX_ID_CHARS = 256
MAX_REASON_CHARS = 200
LOOKUP_FIELDS = frozenset({"userId", "provider"})
CAMPAIGN_FIELDS = frozenset({"reason", "before"})
_CAMPAIGN_ID = re.compile(r"^c[0-9a-f]{12}$")


def _no_such_campaign() -> NotFoundError:
    return NotFoundError("There is no such campaign.", code="campaign_not_found")


def _campaign_id(req: func.HttpRequest) -> str:
    campaign_id = req.route_params.get("campaignId") or ""
    if not _CAMPAIGN_ID.match(campaign_id):
        raise _no_such_campaign()
    return campaign_id


def _campaign_answer(campaign: dict[str, Any] | None) -> func.HttpResponse:
    """200 with the campaign's progress, or 404 when there is no such campaign."""
    if campaign is None:
        raise _no_such_campaign()
    return json_response(200, campaign)


def default_provider(auth: AuthSettings) -> str | None:
    """The provider part of a user key, as the configured authentication mode builds it."""
    if auth.mode == "dev":
        return "dev"
    if auth.mode == "jwt":
        return auth.issuer
    return None  # easyauth: the IDP varies per user (aad, google, ...), so the operator must say


def parse_revocation_requests(body: object, auth: AuthSettings) -> list[dict[str, str]]:
    """One request object or a list of them -> validated entries (nothing is recorded if any is bad)."""
    entries = body if isinstance(body, list) else [body]
    if not entries:
        raise InvalidRequestError("Send at least one request.", code="invalid_body")
    if len(entries) > MAX_REQUESTS_PER_CALL:
        raise InvalidRequestError(f"At most {MAX_REQUESTS_PER_CALL} requests per call.", code="too_many_requests_in_body")
    parsed = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidRequestError(f"requests[{index}] must be a JSON object.", code="invalid_body")
        reject_unknown_fields(entry, REQUEST_FIELDS)
        label = f"requests[{index}]"
        user_id = required_string(entry, "userId", max_chars=MAX_ID_CHARS, label=f"{label}.userId")
        provider = string_field(entry, "provider", max_chars=MAX_ID_CHARS, required=False, label=f"{label}.provider")
        provider = provider or default_provider(auth)
        if provider is None:
            raise InvalidRequestError(
                f"requests[{index}].provider is required with AUTH_MODE=easyauth (the identity provider, e.g. aad).",
                code="invalid_body",
                target="provider",
            )
        action = entry.get("action", "revoke")
        if action not in ACTIONS:
            raise InvalidRequestError(
                f"requests[{index}].action must be one of {', '.join(ACTIONS)}.", code="invalid_body", target="action"
            )
        reason = string_field(entry, "reason", max_chars=MAX_REASON_CHARS, required=False, label=f"{label}.reason") or ""
        parsed.append({"userId": user_id, "provider": provider, "action": action, "reason": reason})
    return parsed


def operator_api(services: Services) -> func.Blueprint:
    """``/api/ops/revocations`` and ``/api/ops/revocations/status``, behind the host's function key."""
    bp = func.Blueprint()

    @http_function(bp, "request_revocations", "ops/revocations", "POST", func.AuthLevel.FUNCTION, services.metrics)
    async def request_revocations(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/ops/revocations (function key): record revocation requests; 202."""
        entries = parse_revocation_requests(read_json(req, required=True), services.auth_settings)
        ledger = services.ledger()
        now = utc_now()
        for entry in entries:
            action: Action = "delete" if entry["action"] == "delete" else "revoke"
            key = user_key(entry["provider"], entry["userId"])
            await ledger.record(action, key, reason=entry["reason"], source="operator", now=now)
        return json_response(
            202,
            {
                "accepted": len(entries),
                "requests": [{**entry, "status": "pending"} for entry in entries],
                "statusUrl": "/api/ops/revocations/status",
            },
        )

    @http_function(bp, "revocation_status", "ops/revocations/status", "GET", func.AuthLevel.FUNCTION, services.metrics)
    async def revocation_status(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """GET /api/ops/revocations/status (function key): the last sweep run and what is pending."""
        ledger = services.ledger()
        pending, capped = await ledger.count_pending()
        return json_response(
            200,
            {
                "lastRun": await ledger.load_status(LAST_RUN),
                "lastBatch": await ledger.load_status(LAST_BATCH),
                "fanOut": await ledger.load_status(CHECKPOINT),
                "pendingRequests": pending,
                "pendingRequestsCapped": capped,
                "poisonMessages": await services.fanout().poison_count(),
                "campaigns": [campaign for campaign in await services.campaigns().listing() if campaign["status"] == "active"],
            },
        )

    @http_function(bp, "start_campaign", "ops/campaigns", "POST", func.AuthLevel.FUNCTION, services.metrics)
    async def start_campaign(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/ops/campaigns (function key): revoke every token issued before T (default now); 202."""
        body = read_json_object(req, required=True)
        reject_unknown_fields(body, CAMPAIGN_FIELDS)
        reason = required_string(body, "reason", max_chars=MAX_REASON_CHARS)
        before = None
        if "before" in body:
            before = parse_utc(body["before"])
            if before is None:
                raise InvalidRequestError("before must be an RFC 3339 date-time.", code="invalid_body", target="before")
        campaign = await services.campaigns().start(reason, before)
        return json_response(202, {**campaign, "statusUrl": f"/api/ops/campaigns/{campaign['id']}"})

    @http_function(bp, "campaign_status", "ops/campaigns/{campaignId}", "GET", func.AuthLevel.FUNCTION, services.metrics)
    async def campaign_status(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """GET /api/ops/campaigns/{campaignId} (function key): progress and ETA."""
        return _campaign_answer(await services.campaigns().get(_campaign_id(req)))

    @http_function(bp, "cancel_campaign", "ops/campaigns/{campaignId}/cancel", "POST", func.AuthLevel.FUNCTION, services.metrics)
    async def cancel_campaign(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """POST /api/ops/campaigns/{campaignId}/cancel (function key): stop it; what was revoked stays revoked."""
        read_json_object(req, required=False)
        return _campaign_answer(await services.campaigns().cancel(_campaign_id(req)))

    @http_function(bp, "lookup_user", "ops/identities", "GET", func.AuthLevel.FUNCTION, services.metrics)
    async def lookup_user(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """GET /api/ops/identities?userId=…[&provider=…] (function key): a user's ACS identity, requests and history."""
        query = dict(req.params)
        reject_unknown_fields(query, LOOKUP_FIELDS)
        user_id = required_string(query, "userId", max_chars=MAX_ID_CHARS)
        provider = string_field(query, "provider", max_chars=MAX_ID_CHARS, required=False) or default_provider(
            services.auth_settings
        )
        if provider is None:
            raise InvalidRequestError(
                "provider is required with AUTH_MODE=easyauth (the identity provider, e.g. aad).",
                code="invalid_query",
                target="provider",
            )
        return json_response(200, await services.lookup().by_user(provider, user_id))

    @http_function(bp, "lookup_identity", "ops/identities/{acsUserId}", "GET", func.AuthLevel.FUNCTION, services.metrics)
    async def lookup_identity(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
        """GET /api/ops/identities/{acsUserId} (function key): the app user an ACS identity belongs (or belonged) to."""
        acs_user_id = required_string(dict(req.route_params), "acsUserId", max_chars=MAX_ID_CHARS)
        found = await services.lookup().by_acs_id(acs_user_id)
        if found is None:
            raise NotFoundError("No app user is mapped to this ACS identity (nor was, as far as the index knows).")
        return json_response(200, found)

    return bp
