"""`python -m devhost` over real HTTP with the sample app: routing, keys, settings, CORS, timers, errors."""

from __future__ import annotations

import signal
import socket

import pytest
import requests

from tests.devhost.conftest import sample_dir, start_devhost

pytestmark = pytest.mark.integration  # devhost subprocesses on loopback

TIMEOUT = 10
FILE_CORS = "https://app.example.com"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Both keys configured, routePrefix "v1" from host.json, CORS for one origin with credentials."""
    app_dir = sample_dir(
        tmp_path_factory.mktemp("sample"),
        host_json={"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}},
        local_settings={
            "IsEncrypted": False,
            "Values": {"SAMPLE_SETTING": "from-file", "SAMPLE_SCHEDULE": "0 0 * * * *"},
            "Host": {"LocalHttpPort": 1, "CORS": f"{FILE_CORS},http://localhost:3000", "CORSCredentials": True},
        },
    )
    marker = app_dir / "marker.log"
    env = {
        "SAMPLE_SETTING": "from-env",  # the environment wins over local.settings.json
        "SAMPLE_MARKER_FILE": str(marker),
        "DEVHOST_FUNCTION_KEY": "fkey-123",
        "DEVHOST_MASTER_KEY": "mkey-456",
    }
    running = start_devhost(app_dir, env)
    running.marker = marker
    yield running
    assert running.stop() == 0


def url(host, path: str) -> str:
    return host.url + path


# ----------------------------------------------------------------- start-up, settings


def test_prints_one_url_line_and_lists_the_functions(host):
    assert host.url.startswith("http://127.0.0.1:") and not host.url.endswith(":1")  # --port 0 beats LocalHttpPort
    assert [line for line in host.stdout if line.strip()] == [f"DEVHOST_URL={host.url}\n"]
    log = host.wait_log("Keys enforced for")
    assert f"hello: [GET] {host.url}/v1/hello/{{name}} (anonymous)" in log
    assert f"item: [GET,DELETE] {host.url}/v1/items/{{id:int}} (function)" in log
    assert f"files: [*] {host.url}/v1/files/{{*rest}}" in log
    assert f"tick: TimerTrigger, run with POST {host.url}/admin/functions/tick" in log
    assert "Keys enforced for: function, admin" in log


def test_environment_wins_over_local_settings_also_at_import_time(host):
    body = requests.get(url(host, "/v1/hello/ada"), timeout=TIMEOUT).json()
    assert body["setting"] == "from-env" and body["at_import"] == "from-env"


def test_local_settings_values_are_loaded_before_the_import(tmp_path):
    app_dir = sample_dir(tmp_path, local_settings={"Values": {"SAMPLE_SETTING": "from-file"}})
    running = start_devhost(app_dir, {})
    try:
        body = requests.get(running.url + "/api/hello/ada", timeout=TIMEOUT).json()  # no host.json: prefix "api"
        assert body["setting"] == "from-file" and body["at_import"] == "from-file"
    finally:
        running.stop()


# ----------------------------------------------------------------- routing


def test_route_prefix_from_host_json_and_route_params(host):
    response = requests.get(url(host, "/v1/hello/ada?q=1"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Sample"] == "yes"
    assert response.json()["name"] == "ada" and response.json()["q"] == "1"
    assert requests.get(url(host, "/api/hello/ada"), timeout=TIMEOUT).status_code == 404  # not the default prefix
    assert requests.get(url(host, "/hello/ada"), timeout=TIMEOUT).status_code == 404
    assert requests.get(url(host, "/V1/HELLO/Ada"), timeout=TIMEOUT).json()["name"] == "Ada"  # literals ignore case


def test_literal_route_wins_over_a_parameter(host):
    response = requests.get(url(host, "/v1/hello/world"), timeout=TIMEOUT)
    assert response.text == "the literal route"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_optional_constrained_and_catch_all_parameters(host):
    assert requests.get(url(host, "/v1/inspect/x"), timeout=TIMEOUT).json()["route"] == {"a": "x"}
    assert requests.get(url(host, "/v1/inspect/x/y%20z"), timeout=TIMEOUT).json()["route"] == {"a": "x", "b": "y z"}
    assert requests.get(url(host, "/v1/letters/abc"), timeout=TIMEOUT).text == "abc"
    assert requests.get(url(host, "/v1/letters/abc1"), timeout=TIMEOUT).status_code == 404
    assert requests.patch(url(host, "/v1/files/a/b/c.txt"), timeout=TIMEOUT).text == "PATCH a/b/c.txt"


def test_unknown_route_404_and_wrong_method_405(host):
    missing = requests.get(url(host, "/v1/nothing"), timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.content == b""
    wrong = requests.delete(url(host, "/v1/hello/ada"), timeout=TIMEOUT)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    wrong = requests.get(url(host, "/v1/echo"), timeout=TIMEOUT)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST, PUT"


# ----------------------------------------------------------------- sync / async, request and response


def test_sync_function_gets_the_raw_body(host):
    response = requests.post(url(host, "/v1/echo"), data=b"\x00\x01 raw \xff", timeout=TIMEOUT)
    assert response.status_code == 201 and response.content == b"\x00\x01 raw \xff"
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_the_function_sees_the_whole_request(host):
    response = requests.post(url(host, "/v1/inspect/one?x=1&y=two"), data="payload", headers={"X-Custom": "hi"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/problem+json"  # the function's own header
    assert response.json() == {
        "method": "POST",
        "url": f"{host.url}/v1/inspect/one?x=1&y=two",
        "header": "hi",  # headers are case-insensitive, as in the host
        "params": {"x": "1", "y": "two"},
        "route": {"a": "one"},
        "body": "payload",
        "function": "inspect_request",  # a `context` parameter gets a simple context
    }


@pytest.mark.parametrize("path", ["/v1/boom", "/v1/boom-sync"])
def test_a_raising_function_is_500_without_details(host, path):
    response = requests.get(url(host, path), timeout=TIMEOUT)
    assert response.status_code == 500 and response.content == b""
    assert "hunter2" not in response.text
    error = "RuntimeError" if path == "/v1/boom" else "ValueError"
    assert error in host.wait_log(error, f"GET {path} 500")  # the trace goes to stderr


# ----------------------------------------------------------------- keys


def test_function_level_keys_by_header_and_query(host):
    item = url(host, "/v1/items/42")
    missing = requests.get(item, timeout=TIMEOUT)
    assert missing.status_code == 401 and missing.content == b""
    assert requests.get(item, headers={"x-functions-key": "wrong"}, timeout=TIMEOUT).status_code == 401
    assert requests.get(item + "?code=wrong", timeout=TIMEOUT).status_code == 401
    assert requests.get(item, headers={"x-functions-key": "fkey-123"}, timeout=TIMEOUT).text == "GET 42"
    assert requests.delete(item + "?code=fkey-123", timeout=TIMEOUT).text == "DELETE 42"
    assert requests.get(item + "?code=mkey-456", timeout=TIMEOUT).status_code == 200  # the master key opens everything
    assert requests.get(url(host, "/v1/items/abc?code=fkey-123"), timeout=TIMEOUT).status_code == 404  # {id:int}


def test_admin_level_needs_the_master_key(host):
    secret = url(host, "/v1/secret")
    assert requests.get(secret, timeout=TIMEOUT).status_code == 401
    assert requests.get(secret + "?code=fkey-123", timeout=TIMEOUT).status_code == 401
    assert requests.get(secret, headers={"x-functions-key": "fkey-123"}, timeout=TIMEOUT).status_code == 401
    assert requests.get(secret, headers={"x-functions-key": "mkey-456"}, timeout=TIMEOUT).text == "admin only"
    assert requests.get(secret + "?code=mkey-456", timeout=TIMEOUT).text == "admin only"


def test_anonymous_routes_need_no_key(host):
    assert requests.get(url(host, "/v1/hello/ada"), timeout=TIMEOUT).status_code == 200


# ----------------------------------------------------------------- admin API


def test_timer_runs_on_demand_through_the_admin_api(host):
    tick = url(host, "/admin/functions/tick")
    assert requests.post(tick, json={"input": ""}, timeout=TIMEOUT).status_code == 401
    assert requests.post(tick + "?code=fkey-123", json={"input": ""}, timeout=TIMEOUT).status_code == 401
    response = requests.post(tick, json={"input": ""}, headers={"x-functions-key": "mkey-456"}, timeout=TIMEOUT)
    assert response.status_code == 202 and response.content == b""
    assert "tick past_due=False\n" in host.marker.read_text()


def test_admin_api_queue_input_errors_and_unknown_names(host):
    admin = {"x-functions-key": "mkey-456"}
    assert (
        requests.post(url(host, "/admin/functions/work"), json={"input": "job-1"}, headers=admin, timeout=TIMEOUT).status_code
        == 202
    )
    assert "work job-1\n" in host.marker.read_text()
    failing = requests.post(url(host, "/admin/functions/tick_fails"), json={}, headers=admin, timeout=TIMEOUT)
    assert failing.status_code == 500 and failing.content == b""
    assert requests.post(url(host, "/admin/functions/nope"), json={}, headers=admin, timeout=TIMEOUT).status_code == 404
    assert requests.get(url(host, "/admin/functions/tick"), headers=admin, timeout=TIMEOUT).status_code == 405


# ----------------------------------------------------------------- CORS


def test_cors_preflight_for_an_allowed_origin(host):
    preflight = requests.options(
        url(host, "/v1/hello/ada"),
        headers={
            "Origin": FILE_CORS,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,x-custom",
        },
        timeout=TIMEOUT,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == FILE_CORS
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET"
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization,x-custom"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0


def test_cors_simple_requests_allowed_and_disallowed(host):
    hello = url(host, "/v1/hello/ada")
    allowed = requests.get(hello, headers={"Origin": "http://localhost:3000"}, timeout=TIMEOUT)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in allowed.headers["Vary"]
    other = requests.get(hello, headers={"Origin": "https://evil.example.com"}, timeout=TIMEOUT)
    assert other.status_code == 200
    assert not any(name.lower().startswith("access-control-") for name in other.headers)
    denied = requests.options(
        hello, headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}, timeout=TIMEOUT
    )
    assert not any(name.lower().startswith("access-control-") for name in denied.headers)
    kept = requests.get(url(host, "/v1/inspect/a"), headers={"Origin": FILE_CORS}, timeout=TIMEOUT)
    assert kept.headers["Vary"] == "Accept, Origin"  # the function's Vary is kept


# ----------------------------------------------------------------- access log


def test_access_log_has_no_query_strings_keys_or_bodies(host):
    requests.get(url(host, "/v1/items/7?code=fkey-123&token=tok-secret"), timeout=TIMEOUT)
    requests.post(url(host, "/v1/echo"), data=b"body-secret", headers={"Authorization": "Bearer hdr-secret"}, timeout=TIMEOUT)
    requests.get(url(host, "/v1/items/7"), headers={"x-functions-key": "mkey-456"}, timeout=TIMEOUT)
    requests.get(url(host, "/v1/nothing"), timeout=TIMEOUT)
    log = host.wait_log("GET /v1/items/7 200", "POST /v1/echo 201", "GET /v1/nothing 404")
    assert "GET /v1/items/7 200" in log and "POST /v1/echo 201" in log and "GET /v1/nothing 404" in log
    for secret in ("fkey-123", "mkey-456", "tok-secret", "body-secret", "hdr-secret", "code="):
        assert secret not in log


# ----------------------------------------------------------------- other settings, stopping


def test_no_keys_configured_env_cors_and_local_http_port(tmp_path):
    with socket.socket() as probe:  # a free port for Host.LocalHttpPort
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_dir = sample_dir(
        tmp_path,
        host_json={"version": "2.0", "extensions": {"http": {"routePrefix": ""}}},
        local_settings={
            "Values": {"SAMPLE_MARKER_FILE": str(tmp_path / "m.log")},
            "Host": {"LocalHttpPort": port, "CORS": FILE_CORS},
        },
    )
    running = start_devhost(app_dir, {"DEVHOST_CORS": "*"}, "--no-port")
    try:
        assert running.url == f"http://127.0.0.1:{port}"
        assert "Keys enforced for: nothing" in running.wait_log("Keys enforced for")
        assert requests.get(running.url + "/items/1", timeout=TIMEOUT).text == "GET 1"  # no prefix, no key needed
        assert requests.get(running.url + "/secret", timeout=TIMEOUT).text == "admin only"
        assert requests.post(running.url + "/admin/functions/TICK", json={}, timeout=TIMEOUT).status_code == 202
        cors = requests.get(running.url + "/hello/ada", headers={"Origin": "https://anything.example"}, timeout=TIMEOUT)
        assert cors.headers["Access-Control-Allow-Origin"] == "*"  # DEVHOST_CORS wins over Host.CORS
        assert "Access-Control-Allow-Credentials" not in cors.headers
    finally:
        assert running.stop(signal.SIGINT) == 0


def test_stops_cleanly_on_sigterm(tmp_path):
    running = start_devhost(sample_dir(tmp_path), {})
    assert requests.get(running.url + "/api/hello/x", timeout=TIMEOUT).status_code == 200
    assert running.stop(signal.SIGTERM) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(running.url + "/api/hello/x", timeout=TIMEOUT)
