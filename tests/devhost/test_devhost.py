"""devhost over real HTTP with a sample app: routing, keys, settings, CORS, timers, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).resolve().parent / "sample_app"


def start_devhost(app_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, list[str]]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVHOST_", "SAMPLE_"))}
    full_env.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--port", "0", "--app-dir", str(app_dir)],
        cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(process.stderr), daemon=True).start()
    for line in process.stdout:
        if line.startswith("DEVHOST_URL="):
            return process, line.strip().split("=", 1)[1], log
    process.kill()
    raise RuntimeError("devhost did not start: " + "".join(log))


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("sample")
    shutil.copy(SAMPLE / "function_app.py", app_dir / "function_app.py")
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}}))
    (app_dir / "local.settings.json").write_text(json.dumps({
        "Values": {"SAMPLE_SETTING": "from-file", "SAMPLE_OTHER": "file"},
        "Host": {"CORS": "https://app.example.com", "CORSCredentials": True},
    }))
    timer_file = app_dir / "timer.log"
    env = {
        "SAMPLE_SETTING": "from-env",  # the environment wins over local.settings.json
        "SAMPLE_TIMER_FILE": str(timer_file),
        "DEVHOST_FUNCTION_KEY": "fkey",
        "DEVHOST_MASTER_KEY": "mkey",
    }
    process, url, log = start_devhost(app_dir, env)
    yield {"url": url, "timer_file": timer_file, "log": log}
    process.terminate()
    process.wait(timeout=10)


def test_route_prefix_params_and_env_precedence(host):
    response = requests.get(f"{host['url']}/v1/hello/ada?q=1", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Sample"] == "yes"
    assert response.json() == {"name": "ada", "q": "1", "setting": "from-env"}
    assert requests.get(f"{host['url']}/api/hello/ada", timeout=10).status_code == 404  # prefix comes from host.json
    assert requests.get(f"{host['url']}/V1/HELLO/ada", timeout=10).status_code == 200  # literal parts ignore case


def test_sync_function_gets_the_raw_body(host):
    response = requests.post(f"{host['url']}/v1/echo", data=b"\x00\x01 raw", timeout=10)
    assert response.status_code == 201 and response.content == b"\x00\x01 raw"


def test_unknown_route_404_and_wrong_method_405(host):
    assert requests.get(f"{host['url']}/v1/nothing", timeout=10).status_code == 404
    wrong = requests.delete(f"{host['url']}/v1/hello/ada", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"


def test_function_level_keys(host):
    url = f"{host['url']}/v1/items/42"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "fkey"}, timeout=10).text == "GET 42"
    assert requests.get(url + "?code=mkey", timeout=10).status_code == 200  # the master key opens everything
    assert requests.get(f"{host['url']}/v1/items/abc?code=fkey", timeout=10).status_code == 404  # {id:int}


def test_admin_level_needs_the_master_key(host):
    url = f"{host['url']}/v1/secret"
    assert requests.get(url + "?code=fkey", timeout=10).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "mkey"}, timeout=10).text == "admin only"


def test_a_raising_function_is_500_without_details(host):
    response = requests.get(f"{host['url']}/v1/boom", timeout=10)
    assert response.status_code == 500 and response.content == b""


def test_timer_runs_on_demand_through_the_admin_api(host):
    url = f"{host['url']}/admin/functions/tick"
    assert requests.post(url, json={"input": ""}, timeout=10).status_code == 401
    assert requests.post(url, json={"input": ""}, headers={"x-functions-key": "mkey"}, timeout=10).status_code == 202
    assert host["timer_file"].read_text() == "past_due=False\n"
    assert requests.post(f"{host['url']}/admin/functions/nope", headers={"x-functions-key": "mkey"}, timeout=10).status_code == 404


def test_cors_preflight_and_simple_requests(host):
    url = f"{host['url']}/v1/hello/ada"
    preflight = requests.options(url, headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization",
    }, timeout=10)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    simple = requests.get(url, headers={"Origin": "https://app.example.com"}, timeout=10)
    assert simple.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = requests.get(url, headers={"Origin": "https://evil.example.com"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers
    denied = requests.options(url, headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in denied.headers


def test_access_log_has_no_query_strings_or_keys(host):
    requests.get(f"{host['url']}/v1/items/7?code=fkey", timeout=10)
    log = "".join(host["log"])
    assert "GET /v1/items/7 200" in log
    assert "fkey" not in log and "mkey" not in log
