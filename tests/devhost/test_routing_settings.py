"""devhost's route templates and settings files, without a server."""

from __future__ import annotations

import json
import os

import pytest

from devhost import HttpRoute, load_host_settings, read_route_prefix


def route(template: str, prefix: str = "api") -> HttpRoute:
    return HttpRoute("f", template, None, "anonymous", "req", lambda req: None, prefix)


@pytest.mark.parametrize(
    "template, path, expected",
    [
        ("hello/{name}", "/api/hello/ada", {"name": "ada"}),
        ("hello/{name}", "/API/Hello/ada/", {"name": "ada"}),
        ("hello/{name}", "/api/hello", None),
        ("hello/{name}", "/api/hello/a/b", None),
        ("items/{id:int}", "/api/items/-42", {"id": "-42"}),
        ("items/{id:int}", "/api/items/4x", None),
        ("words/{w:alpha}", "/api/words/abc", {"w": "abc"}),
        ("words/{w:alpha}", "/api/words/ab1", None),
        ("opt/{a?}", "/api/opt", {}),
        ("opt/{a?}", "/api/opt/x", {"a": "x"}),
        ("opt/{a=dflt}", "/api/opt", {"a": "dflt"}),
        ("files/{*rest}", "/api/files/a/b%20c", {"rest": "a/b c"}),
        ("files/{*rest}", "/api/files", {}),
        ("f/{name}.{ext}", "/api/f/a.txt", {"name": "a", "ext": "txt"}),
        ("x/{id:regex(^\\d{{3}}$)}", "/api/x/123", {"id": "123"}),  # unknown constraints: any segment
        ("", "/api", {}),
        ("hello/{name}", "/hello/ada", None),
    ],
)
def test_templates(template, path, expected):
    assert route(template).match(path) == expected


def test_no_prefix():
    assert route("hello/{name}", "").match("/hello/ada") == {"name": "ada"}
    assert route("hello/{name}", "").path == "/hello/{name}"


def test_precedence_literals_constraints_parameters_catch_all():
    routes = [route("a/{*rest}"), route("a/{x?}"), route("a/{x}"), route("a/{x:int}"), route("a/b")]
    assert [r.template for r in sorted(routes, key=lambda r: r.precedence)] == [
        "a/b",
        "a/{x:int}",
        "a/{x}",
        "a/{x?}",
        "a/{*rest}",
    ]


def test_local_settings_do_not_override_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVHOST_T_SET", "env")
    monkeypatch.delenv("DEVHOST_T_NEW", raising=False)
    monkeypatch.delenv("DEVHOST_CORS", raising=False)
    monkeypatch.delenv("DEVHOST_CORS_CREDENTIALS", raising=False)
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "Values": {"DEVHOST_T_SET": "file", "DEVHOST_T_NEW": "file", "DEVHOST_T_BOOL": True},
                "Host": {"LocalHttpPort": 7999, "CORS": "http://a.test, http://b.test/", "CORSCredentials": "true"},
            }
        )
    )
    try:
        settings = load_host_settings(tmp_path)
        assert os.environ["DEVHOST_T_SET"] == "env" and os.environ["DEVHOST_T_NEW"] == "file"
        assert os.environ["DEVHOST_T_BOOL"] == "true"
    finally:
        for name in ("DEVHOST_T_NEW", "DEVHOST_T_BOOL"):
            os.environ.pop(name, None)
    assert settings.local_http_port == 7999
    assert settings.cors_origins == ("http://a.test", "http://b.test") and settings.cors_credentials is True
    assert settings.route_prefix == "api"  # no host.json


@pytest.mark.parametrize(
    "host_json, prefix",
    [({}, "api"), ({"extensions": {"http": {"routePrefix": ""}}}, ""), ({"extensions": {"http": {"routePrefix": "/v2/"}}}, "v2")],
)
def test_route_prefix_from_host_json(tmp_path, host_json, prefix):
    (tmp_path / "host.json").write_text(json.dumps(host_json))
    assert read_route_prefix(tmp_path) == prefix
