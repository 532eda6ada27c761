"""Request-body checks with ACS's codes, targets and (for the expiry) its exact message."""

from __future__ import annotations

import json
from typing import Any

from emulator.errors import AcsError

SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 60, 1440, 1440


def parse_json(body: bytes) -> dict[str, Any]:
    """{} for an empty body; 400 for anything that is not a JSON object."""
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
        raise AcsError(400, "ValidationError", "Scopes must contain at least one value.", target="Scopes")
    for scope in value:
        if scope not in SCOPES:
            raise AcsError(
                400, "ValidationError", f"Scope '{scope}' is invalid. Valid scopes: {', '.join(SCOPES)}.", target="Scopes"
            )
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
