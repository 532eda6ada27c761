"""Time in one form: timezone-aware UTC, written as RFC 3339 with a ``Z`` to the second.

One formatter for every answer, status document and checkpoint, so that what the API
returns, what the sweep stores and what an operator reads all look the same and parse
everywhere (JavaScript's ``Date`` included).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the domain never handles naive datetimes)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC; a naive value (what Table storage hands back) is taken as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second: ``2026-11-26T09:30:00Z``."""
    # isoformat, not strftime("%Y"): strftime writes year 246 as "246", which is not RFC 3339 (found by fuzzing)
    return as_utc(moment).replace(microsecond=0, tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_utc(value: object) -> datetime | None:
    """The inverse of :func:`format_utc` (any RFC 3339 offset accepted); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None
