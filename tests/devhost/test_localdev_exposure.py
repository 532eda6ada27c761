"""Issue 11, item 7: ``make run`` (localdev/run.py) says what it leaves open (unit tests, in memory).

They live with devhost's tests because the warnings describe devhost's (and Core Tools') local
key handling. References: Azure/azure-functions-core-tools, StartHostAction.Setup() listens on
0.0.0.0; Microsoft Learn, "Manually run a non HTTP-triggered function": locally, authorization
isn't enforced.
"""

from __future__ import annotations

import pytest

from localdev.exposure import exposure_warnings, is_loopback


def settings(**values: str):
    return lambda name: values.get(name, "")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
                                                 ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
                                                 ("my-laptop.local", False)])  # fmt: skip
def test_loopback_is_recognised(host, loopback):
    assert is_loopback(host) is loopback


def test_the_default_make_run_in_dev_mode_prints_nothing():
    assert exposure_warnings("127.0.0.1", False, settings(AUTH_MODE="dev")) == []


def test_beyond_loopback_in_dev_mode_warns_that_anyone_can_be_any_user():
    [warning] = exposure_warnings("0.0.0.0", False, settings(AUTH_MODE="dev"))
    assert "listens on 0.0.0.0" in warning and "other machines" in warning
    assert "act as any user" in warning
    assert "/api/ops/revocations" in warning and "/admin/functions" in warning and "DEVHOST_FUNCTION_KEY" in warning


@pytest.mark.parametrize("mode", ["jwt", "easyauth", ""])
def test_a_real_auth_mode_without_keys_warns_that_operator_endpoints_are_open(mode):
    [warning] = exposure_warnings("127.0.0.1", False, settings(AUTH_MODE=mode))
    assert f"AUTH_MODE={mode or '(unset)'}" in warning
    assert "/api/ops/revocations" in warning and "/admin/functions/<name>" in warning
    assert "DEVHOST_FUNCTION_KEY and DEVHOST_MASTER_KEY" in warning


def test_keys_close_what_they_cover():
    only_function = exposure_warnings("127.0.0.1", False, settings(AUTH_MODE="jwt", DEVHOST_FUNCTION_KEY="k"))
    assert len(only_function) == 1 and "/admin/functions" in only_function[0] and "/api/ops" not in only_function[0]
    both = settings(AUTH_MODE="jwt", DEVHOST_FUNCTION_KEY="k", DEVHOST_MASTER_KEY="m")
    assert exposure_warnings("127.0.0.1", False, both) == []
    [beyond] = exposure_warnings("0.0.0.0", False, both)  # still reachable from the network, but keys are needed
    assert "No key is needed" not in beyond and "act as any user" not in beyond


def test_core_tools_always_listens_everywhere_and_never_checks_keys_locally():
    warnings = exposure_warnings("127.0.0.1", True, settings(AUTH_MODE="jwt", DEVHOST_FUNCTION_KEY="k", DEVHOST_MASTER_KEY="m"))
    assert len(warnings) == 2
    assert "func start listens on 0.0.0.0" in warnings[0]
    assert "Core Tools does not check function keys locally" in warnings[1]
    [dev] = exposure_warnings("127.0.0.1", True, settings(AUTH_MODE="dev"))
    assert "act as any user" in dev


def test_no_warning_quotes_a_key():
    for warning in exposure_warnings("0.0.0.0", True, settings(AUTH_MODE="jwt", DEVHOST_FUNCTION_KEY="fk-secret")):
        assert "fk-secret" not in warning
