"""devhost's route table is the app's registered functions, and docs/openapi.yaml matches both."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import function_app
from devhost.routing import function_table
from devhost.settings import read_route_prefix
from shared import api
from shared.revocation import api as revocation_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    return function_table(function_app.app)  # app.get_functions() runs once per process; this caches it


def test_every_registered_function_is_routed(table):
    names = {route.name for route in table.http_routes}
    user_facing = {"issue_token", "refresh_token", "revoke_tokens", "exchange_teams_token", "delete_identity", "health"}
    operators = {"request_revocations", "revocation_status"}
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
    registered = {
        (route.template, method, route.name)
        for route in table.http_routes
        for method in (getattr(api, route.name, None) or getattr(revocation_api, route.name)).allowed_methods
    }
    assert documented == registered
