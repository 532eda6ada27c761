"""Operators' HTTP endpoints for revocation (function key; routes under ``/api/ops``).

Not ``/api/admin/...``: the Functions host refuses routes that start with ``admin``
(reserved for its own admin API), whatever the route prefix.

``POST /api/ops/revocations`` records requests durably and answers 202; the sweep
carries them out. ``GET /api/ops/revocations/status`` shows the last run.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from shared import settings
from shared.auth import Caller
from shared.errors import InvalidRequestError
from shared.http import RequestContext, api_endpoint, json_response, read_json, reject_unknown_fields
from shared.revocation.ledger import ACTIONS
from shared.revocation.runtime import get_fanout, get_ledger
from shared.revocation.sweep import CHECKPOINT, LAST_BATCH, LAST_RUN, utc_now

REQUEST_FIELDS = frozenset({"userId", "provider", "reason", "action"})
MAX_REQUESTS_PER_CALL = 100
MAX_ID_CHARS = 256
MAX_REASON_CHARS = 200


def default_provider() -> str | None:
    """The provider part of a user key, as the configured authentication mode builds it."""
    auth = settings.auth_settings()
    if auth.mode == "dev":
        return "dev"
    if auth.mode == "jwt":
        return auth.issuer
    return None  # easyauth: the IDP varies per user (aad, google, ...), so the operator must say


def _string(entry: dict[str, Any], field: str, index: int, *, required: bool, max_chars: int) -> str | None:
    value = entry.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"requests[{index}].{field} must be a non-empty string.", code="invalid_body", target=field)
    if len(value) > max_chars:
        raise InvalidRequestError(f"requests[{index}].{field} is longer than {max_chars} characters.", code="invalid_body", target=field)
    return value


def parse_revocation_requests(body: Any) -> list[dict[str, str]]:
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
        user_id = _string(entry, "userId", index, required=True, max_chars=MAX_ID_CHARS)
        provider = _string(entry, "provider", index, required=False, max_chars=MAX_ID_CHARS) or default_provider()
        if provider is None:
            raise InvalidRequestError(
                f"requests[{index}].provider is required with AUTH_MODE=easyauth (the identity provider, e.g. aad).",
                code="invalid_body", target="provider",
            )
        action = entry.get("action", "revoke")
        if action not in ACTIONS:
            raise InvalidRequestError(f"requests[{index}].action must be one of {', '.join(ACTIONS)}.", code="invalid_body", target="action")
        reason = _string(entry, "reason", index, required=False, max_chars=MAX_REASON_CHARS) or ""
        parsed.append({"userId": user_id, "provider": provider, "action": action, "reason": reason})  # type: ignore[dict-item]
    return parsed


@api_endpoint("request_revocations", ("POST",))
async def request_revocations(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    entries = parse_revocation_requests(read_json(req, required=True))
    ledger = get_ledger()
    now = utc_now()
    for entry in entries:
        user_key = Caller(entry["provider"], entry["userId"], frozenset()).key
        await ledger.record(entry["action"], user_key, reason=entry["reason"], source="operator", now=now)  # type: ignore[arg-type]
    return json_response(
        202,
        {
            "accepted": len(entries),
            "requests": [{**entry, "status": "pending"} for entry in entries],
            "statusUrl": "/api/ops/revocations/status",
        },
    )


@api_endpoint("revocation_status", ("GET",))
async def revocation_status(req: func.HttpRequest, ctx: RequestContext) -> func.HttpResponse:
    ledger = get_ledger()
    pending, capped = await ledger.count_pending()
    return json_response(
        200,
        {
            "lastRun": await ledger.load_status(LAST_RUN),
            "lastBatch": await ledger.load_status(LAST_BATCH),
            "fanOut": await ledger.load_status(CHECKPOINT),
            "pendingRequests": pending,
            "pendingRequestsCapped": capped,
            "poisonMessages": await get_fanout().poison_count(),
        },
    )
