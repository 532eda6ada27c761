"""function_app.py: its registered functions are the service's routes, and docs/openapi.yaml matches them."""

from __future__ import annotations

import asyncio

import azure.functions as func
import pytest
import yaml

import function_app
from devhost.routing import HttpRoute, function_table
from devhost.settings import read_route_prefix
from shared.composition import Services
from shared.functions.http import ALL_METHODS
from tests.support import REPO_ROOT

ROOT = REPO_ROOT


def methods_answered(route: HttpRoute) -> set[str]:
    """The methods a function does not refuse with its own 405, found by calling it (no settings: nothing else runs)."""
    answered = set()
    for method in ALL_METHODS:
        request = func.HttpRequest(
            method, f"http://localhost/api/{route.template}", headers={}, params={}, route_params={}, body=b""
        )
        response = asyncio.run(route.function(request))
        if response.status_code != 405:
            answered.add(method)
        else:
            assert route.name and response.headers["Allow"]
    return answered


@pytest.fixture(scope="module")
def table():
    # An app over empty settings: a handler that gets past the method check fails fast with 500 misconfigured.
    return function_table(function_app.create_app(Services({})))


def test_every_registered_function_is_routed(table):
    names = {route.name for route in table.http_routes}
    user_facing = {"issue_token", "refresh_token", "revoke_tokens", "exchange_teams_token", "delete_identity", "health"}
    operators = {"request_revocations", "revocation_status", "lookup_user", "lookup_identity"}
    operators |= {"start_campaign", "campaign_status", "cancel_campaign"}
    assert names == user_facing | operators
    levels = {route.name: route.auth_level for route in table.http_routes}
    assert all(levels[name] == "anonymous" for name in user_facing)  # auth is the app's own
    assert all(levels[name] == "function" for name in operators)  # the host's function key
    assert not any(route.template.lower().startswith("admin") for route in table.http_routes)  # reserved by the host
    others = {other.name: other.trigger_type for other in table.others.values()}
    assert others == {"revocation_sweep": "TimerTrigger", "revocation_batch": "QueueTrigger"}
    assert read_route_prefix(ROOT) == "api"


def test_openapi_paths_and_methods_match_the_routes(table):
    document = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1")
    documented = {
        (path.strip("/"), method.upper(), operation["operationId"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    registered = {(route.template, method, route.name) for route in table.http_routes for method in methods_answered(route)}
    assert documented == registered


TOOLS = ("emulator", "devhost", "localdev", "bench", "tests")


def test_shipped_code_imports_no_tool_and_funcignore_leaves_tools_out():
    """What is deployed (function_app.py and shared/) stands alone; the tools beside it are never shipped."""
    import ast

    shipped = [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]
    offending = []
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offending += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] in TOOLS]
    assert offending == []
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()}
    assert set(TOOLS) <= ignored
