"""The operators' routes (function key; under ``/api/ops``), as one Blueprint.

Not ``/api/admin/...``: the Functions host refuses routes that start with ``admin``
(reserved for its own admin API), whatever the route prefix.

``POST /api/ops/revocations`` records requests durably and answers 202; the sweep
carries them out. ``GET /api/ops/revocations/status`` shows the last run.
"""

from __future__ import annotations

import azure.functions as func

from shared.composition import Services
from shared.domain.caller import user_key
from shared.domain.clock import utc_now
from shared.domain.errors import InvalidRequestError
from shared.domain.models import ACTIONS, Action
from shared.domain.revocation.sweep import CHECKPOINT, LAST_BATCH, LAST_RUN
from shared.domain.validation import reject_unknown_fields, required_string, string_field
from shared.functions.bodies import read_json
from shared.functions.http import ALL_METHODS, RequestContext, api_endpoint, json_response
from shared.settings import AuthSettings

REQUEST_FIELDS = frozenset({"userId", "provider", "reason", "action"})
MAX_REQUESTS_PER_CALL = 100
MAX_ID_CHARS = 256
MAX_REASON_CHARS = 200


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

    @bp.function_name("request_revocations")
    @bp.route(route="ops/revocations", methods=ALL_METHODS, auth_level=func.AuthLevel.FUNCTION)
    @api_endpoint("request_revocations", ("POST",), services.metrics)
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

    @bp.function_name("revocation_status")
    @bp.route(route="ops/revocations/status", methods=ALL_METHODS, auth_level=func.AuthLevel.FUNCTION)
    @api_endpoint("revocation_status", ("GET",), services.metrics)
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
            },
        )

    return bp
