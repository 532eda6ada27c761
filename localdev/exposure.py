"""What ``make run`` leaves open, said out loud before anything listens.

Locally, function and admin keys are not checked unless configured, as under Core Tools
(Microsoft Learn, "Manually run a non HTTP-triggered function": "When you run locally,
authorization isn't enforced"); that is kept. Two situations deserve a warning, because the
developer may believe the service is protected:

- the app listens beyond loopback, so other machines can call it: ``func start`` always listens on
  every interface (Azure/azure-functions-core-tools, ``StartHostAction.Setup()`` binds
  ``0.0.0.0:{port}``), devhost only when ``LOCALDEV_HOST`` says so;
- ``AUTH_MODE`` is not ``dev`` (callers must prove who they are) while the operator endpoints
  (``/api/ops/...``, function level) and the admin API (``/admin/functions/...``, master key)
  still take anyone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

OPERATOR_ENDPOINTS = "/api/ops/revocations, /api/ops/revocations/status"
ADMIN_API = "/admin/functions/<name>"


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def exposure_warnings(listen_host: str, core_tools: bool, setting: Callable[[str], str]) -> list[str]:
    """The warnings for this start, as printable paragraphs; ``setting(name)`` is a setting as the app sees it."""
    warnings: list[str] = []
    auth_mode = setting("AUTH_MODE").lower() or "(unset)"
    if core_tools:
        where = "every network interface (func start listens on 0.0.0.0)"
        open_parts = [f"the operator endpoints ({OPERATOR_ENDPOINTS})", f"the admin API ({ADMIN_API})"]
        how_to_close = "Core Tools does not check function keys locally"
    else:
        where = f"{listen_host} (LOCALDEV_HOST)"
        open_parts = []
        if not setting("DEVHOST_FUNCTION_KEY"):
            open_parts.append(f"the operator endpoints ({OPERATOR_ENDPOINTS})")
        if not setting("DEVHOST_MASTER_KEY"):
            open_parts.append(f"the admin API ({ADMIN_API})")
        how_to_close = "set DEVHOST_FUNCTION_KEY and DEVHOST_MASTER_KEY to require keys"
    open_text = " and ".join(open_parts)
    if core_tools or not is_loopback(listen_host):
        reach = f"WARNING: the app listens on {where}: other machines on your network can call it."
        if auth_mode == "dev":
            reach += " With AUTH_MODE=dev anyone who reaches it can act as any user (X-Dev-User)."
        if open_parts:
            reach += f" No key is needed for {open_text} ({how_to_close})."
        warnings.append(reach)
    if auth_mode != "dev" and open_parts:
        warnings.append(
            f"WARNING: AUTH_MODE={auth_mode} checks who calls the user endpoints, but {open_text} take anyone "
            f"who can reach the port, as under Core Tools locally ({how_to_close}). In Azure they need a "
            "function key or the master key: see the README, Security."
        )
    return warnings
