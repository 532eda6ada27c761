"""devhost's own scheduling of timer triggers: %SETTING% resolution and NCRONTAB (seconds first, UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.triggers import next_occurrence, resolve

T0 = datetime(2026, 11, 26, 0, 3, 7, tzinfo=UTC)


def test_settings_in_percent_signs_resolve_from_the_environment():
    assert resolve("%REVOCATION_SCHEDULE%", {"REVOCATION_SCHEDULE": "0 */5 * * * *"}) == "0 */5 * * * *"
    assert resolve("literal-queue", {}) == "literal-queue"
    with pytest.raises(ValueError, match="REVOCATION_SCHEDULE is not set"):
        resolve("%REVOCATION_SCHEDULE%", {"REVOCATION_SCHEDULE": " "})


def test_ncrontab_has_seconds_first():
    assert next_occurrence("0 */5 * * * *", T0) == datetime(2026, 11, 26, 0, 5, 0, tzinfo=UTC)
    assert next_occurrence("*/10 * * * * *", T0) == datetime(2026, 11, 26, 0, 3, 10, tzinfo=UTC)
    assert next_occurrence("0 30 9 * * 1-5", T0) == datetime(2026, 11, 26, 9, 30, 0, tzinfo=UTC)  # a Thursday
    with pytest.raises(ValueError, match="six-field"):
        next_occurrence("*/5 * * * *", T0)  # five-field cron is not NCRONTAB
