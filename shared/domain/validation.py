"""Checks of request fields, shared by every body the service accepts.

One place for "a non-empty string of at most N characters" and "no fields we do not
know", so every endpoint words its 400s the same way and names the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.domain.errors import InvalidRequestError

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def reject_unknown_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """400 ``unknown_field`` naming what is not in ``allowed`` (so typos are not silently ignored)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field(s): {', '.join(unknown)[:200]}. Allowed: {', '.join(sorted(allowed))}.", code="unknown_field"
        )


def string_field(
    body: Mapping[str, Any], field: str, *, max_chars: int, required: bool = True, label: str | None = None
) -> str | None:
    """``body[field]`` as a non-empty string of at most ``max_chars``; None when optional and absent.

    ``label`` is how the message names the field (``requests[3].userId``); the target stays ``field``.
    """
    value = body.get(field)
    if value is None and not required:
        return None
    return _checked_string(value, field, label or field, max_chars)


def required_string(body: Mapping[str, Any], field: str, *, max_chars: int, label: str | None = None) -> str:
    """Like :func:`string_field`, for a field that must be there."""
    return _checked_string(body.get(field), field, label or field, max_chars)


def required_guid(body: Mapping[str, Any], field: str) -> str:
    """A GUID field (``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``), as Entra ID ids are."""
    value = required_string(body, field, max_chars=36)
    if not _GUID.match(value):
        raise InvalidRequestError(f"{field} must be a GUID.", code="invalid_body", target=field)
    return value


def _checked_string(value: object, field: str, name: str, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{name} must be a non-empty string.", code="invalid_body", target=field)
    if len(value) > max_chars:
        raise InvalidRequestError(f"{name} is longer than {max_chars} characters.", code="invalid_body", target=field)
    return value


#: JSON this service accepts is flat; anything nested deeper than this is refused the same way on
#: every Python (3.11's json gives up near 1,000 levels with RecursionError, 3.13's parses far deeper).
MAX_JSON_DEPTH = 32


def nested_deeper_than(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests arrays/objects more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False
