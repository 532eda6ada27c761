"""Fixtures every test package may use, and the rule that keeps the unit layer fast.

Fixtures live in ``tests/support/`` (registered below), never in another package's
``conftest.py``. A test that uses a fixture with real sockets (Azurite, the emulator,
an app process) must be marked ``integration`` (or a heavier kind): collection fails
otherwise, so ``make test-fast`` never starts a stand-in by accident.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.app_process", "tests.support.sweep_world", "tests.support.clients", "tests.support.oidc_issuer"]

#: Fixtures that start or talk to real stand-ins.
INTEGRATION_FIXTURES = frozenset({"azurite", "emulator", "app_factory", "dev_app", "stand_ins", "world", "sample_site", "issuer"})
#: (the sweep integration tests call theirs "world"; a local OIDC issuer is "issuer")
#: Markers of tests allowed to use real sockets.
REAL_SOCKET_MARKERS = ("integration", "browser", "soak", "upstream", "fleet")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not any(item.get_closest_marker(name) for name in REAL_SOCKET_MARKERS)
    ]
    if unmarked:
        raise pytest.UsageError(
            "These tests use Azurite, the emulator or an app process but are not marked integration: " + ", ".join(unmarked[:10])
        )
