"""Microsoft's own client tests of azure-communication-identity (from its sdist on PyPI), unedited, live against the emulator.

The sdist's tests/ are fetched at set-up (``make upstream-tests``, or here on first use) by tests/upstream/sdist.py and
run in their own pytest process by tests/upstream/runner.py, with the smallest stand-in for their test framework
(tests/upstream/stand_in/devtools_testutils). No assertion of theirs is changed, skipped or weakened; the only
tests not run are those that need a real Entra ID tenant (MSAL sign-in of a Teams user), skipped with that reason,
and those whose body never runs in Microsoft's own CI either (reported as never-run, not counted as passes).
"""

from __future__ import annotations

import json

import pytest

from localdev.emulator_process import start_emulator
from tests.upstream.runner import run_client_tests
from tests.upstream.sdist import DEST, ensure_upstream_tests, installed_version

pytestmark = [pytest.mark.upstream, pytest.mark.integration]

NEEDS_ENTRA = "needs a real Entra ID tenant: the test signs a Teams user in with MSAL (username and password)"
ASYNC_FILE = "test_communication_identity_client_async.py::TestClientAsync::"
#: per pinned SDK version, what its client tests do here; a new version must be reviewed and its line added
EXPECTED = {"1.5.0": {"passed": 62, "skipped": 18, "never-run": 18}}
#: the async tests wrapped by their sync ArgumentPasser: the coroutine of the body is dropped, never awaited
NEVER_RUN_TESTS = ("test_create_user_and_token[", "test_get_token_from_token_credential[")


@pytest.fixture(scope="module")
def upstream_run(tmp_path_factory):
    tests_dir = ensure_upstream_tests()
    work = tmp_path_factory.mktemp("upstream")
    with start_emulator(cert_dir=work / "cert") as emulator:
        run = run_client_tests(tests_dir, emulator, work)
        stats = emulator.stats()
    DEST.mkdir(parents=True, exist_ok=True)
    (DEST / "last-run.json").write_text(
        json.dumps({"version": installed_version(), "counts": run.count(), "outcomes": run.outcomes}, indent=1)
    )
    print(run.summary())
    return run, stats


def test_no_failures_and_every_test_accounted_for(upstream_run):
    run, _ = upstream_run
    counts = run.count()
    assert counts["failed"] == 0 and counts["error"] == 0, run.summary() + "\n" + run.output[-8000:]
    assert dict(counts) == EXPECTED[installed_version()], run.summary()
    assert run.returncode == 0, run.output[-4000:]


def test_only_entra_sign_in_tests_are_skipped(upstream_run):
    run, _ = upstream_run
    skipped = {nodeid: entry for nodeid, entry in run.outcomes.items() if entry["outcome"] == "skipped"}
    assert {entry["reason"] for entry in skipped.values()} == {NEEDS_ENTRA}
    assert all("teams_user" in nodeid for nodeid in skipped)


def test_never_run_tests_are_exactly_the_unawaited_async_ones(upstream_run):
    run, _ = upstream_run
    never_run = sorted(nodeid for nodeid, entry in run.outcomes.items() if entry["outcome"] == "never-run")
    assert never_run and all(
        nodeid.startswith(ASYNC_FILE) and nodeid.removeprefix(ASYNC_FILE).startswith(NEVER_RUN_TESTS) for nodeid in never_run
    )
    assert all("never awaited" in run.outcomes[nodeid]["reason"] for nodeid in never_run)


def test_the_bodies_that_ran_reached_the_emulator(upstream_run):
    _, stats = upstream_run
    # the four Teams tests with an empty or malformed Entra ID token (2 sync, 2 async) got ACS's 401
    assert stats["statuses"].get("teams:401") == 4
    assert stats["statuses"].get("create:201", 0) >= 40 and stats["statuses"].get("revoke:204", 0) >= 4
    assert stats["statuses"].get("issue:400", 0) >= 6  # the out-of-range expiries and missing scopes
