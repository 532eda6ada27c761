"""Request-body checks with ACS's codes, targets and messages (emulator/references.py names where each is recorded)."""

from __future__ import annotations

import json
from typing import Any

from emulator.errors import AcsError, required_field, validation_error
from emulator.references import EMPTY_SCOPES, EXPIRY_MESSAGE

SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 60, 1440, 1440


def parse_json(body: bytes) -> dict[str, Any]:
    """{} for an empty body; 400 for anything that is not a JSON object (our choice: no recording shows one)."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AcsError(400, "InvalidRequestBody", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise AcsError(400, "InvalidRequestBody", "The request body must be a JSON object.")
    return value


def require_scopes(payload: dict[str, Any]) -> Any:
    """``issueAccessToken`` needs ``scopes``: without it the request model is invalid (before the operation runs)."""
    if payload.get("scopes") is None:
        raise required_field("Scopes")
    return payload["scopes"]


def parse_scopes(value: Any) -> list[str]:
    """A non-empty list of known scopes, deduplicated in order."""
    if isinstance(value, list) and not value:
        raise validation_error(*EMPTY_SCOPES)
    if not isinstance(value, list):  # our choice: no recording shows a non-list
        raise AcsError(400, "ValidationError", "Scopes must be a list of scopes.", target="Scopes")
    for scope in value:
        if scope not in SCOPES:  # our choice: no recording shows an unknown scope
            raise AcsError(
                400, "ValidationError", f"Scope '{scope}' is invalid. Valid scopes: {', '.join(SCOPES)}.", target="Scopes"
            )
    return list(dict.fromkeys(value))


def parse_minutes(value: Any) -> int:
    """``expiresInMinutes``: default 1440, else an integer within [60, 1440] (SPEC; message from the recordings)."""
    if value is None:
        return DEFAULT_MINUTES
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MINUTES <= value <= MAX_MINUTES:
        raise validation_error(EXPIRY_MESSAGE.format(value=value, low=MIN_MINUTES, high=MAX_MINUTES), "ExpiresInMinutes")
    return value
