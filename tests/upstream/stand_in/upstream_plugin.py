"""pytest plugin for running Microsoft's azure-communication-identity tests, unedited, against the emulator.

- Every test is marked ``upstream``.
- A test that signs a Teams user in with MSAL (username and password at a real Entra ID tenant) is skipped with
  that reason, at the moment it asks MSAL for the sign-in: there is no Entra ID tenant here.
- A test whose body never started (an async body whose coroutine its wrapper drops unawaited) is reported as
  ``never-run`` (a skip with that reason), not as a pass.
- The outcome of every test is written as JSON to ``$UPSTREAM_REPORT`` for the outer test to count.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from devtools_testutils import bodies

NEEDS_ENTRA = "needs a real Entra ID tenant: the test signs a Teams user in with MSAL (username and password)"
NEVER_RUN = "never-run: the test body never started"
UNAWAITED = " (its async body's coroutine was created but never awaited: the sync ArgumentPasser wrapper drops it)"


class NoEntraTenant:
    """Stands in for ``msal.PublicClientApplication`` in Microsoft's test case: signing in needs a tenant, so skip."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pytest.skip(NEEDS_ENTRA)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "upstream: Microsoft's own SDK tests, run live against the emulator")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.upstream)


def pytest_collection_finish(session: pytest.Session) -> None:
    test_case = sys.modules.get("acs_identity_test_case")
    if test_case is None or not hasattr(test_case, "PublicClientApplication"):
        raise pytest.UsageError(
            "acs_identity_test_case.PublicClientApplication not found: the upstream tests changed; review them"
        )
    test_case.PublicClientApplication = NoEntraTenant  # type: ignore[attr-defined]  # their module, patched at run time


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    bodies.started = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = yield
    if not bodies.started:
        unawaited = any(issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message) for w in caught)
        pytest.skip(NEVER_RUN + (UNAWAITED if unawaited else ""))
    return result


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    if report.skipped and _reason(report).startswith("never-run"):
        return "never-run", "N", "NEVER-RUN"
    return None


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


#: nodeid -> {"outcome": passed | failed | error | skipped | never-run, "reason"}; one pytest session per process
OUTCOMES: dict[str, dict[str, str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = OUTCOMES.setdefault(report.nodeid, {"outcome": "passed", "reason": ""})
    if report.failed:
        entry.update(outcome="failed" if report.when == "call" else "error", reason=str(report.longrepr)[-2000:])
    elif report.skipped and entry["outcome"] == "passed":
        reason = _reason(report)
        entry.update(outcome="never-run" if reason.startswith("never-run") else "skipped", reason=reason)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("UPSTREAM_REPORT")
    if target:
        Path(target).write_text(json.dumps(OUTCOMES, indent=1, sort_keys=True))
