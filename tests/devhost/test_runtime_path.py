"""devhost's runtime path end to end (Python 3.13+): the sample app's functions run inside azure-functions-runtime,
in a worker process, and answer as they do when devhost calls them itself."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.settings import runtime_available
from tests.devhost.conftest import SAMPLE, Host, run_devhost_until_exit, sample_dir, start_devhost

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not runtime_available(), reason="azure-functions-runtime runs on Python 3.13+ (make test313)"),
]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    """The sample app twice: through the runtime and called directly, each with its own marker file."""
    started: dict[str, Host] = {}
    try:
        for mode in ("runtime", "direct"):
            marker = tmp_path_factory.mktemp(mode) / "marker.txt"
            started[mode] = start_devhost(SAMPLE, {"DEVHOST_WORKER": mode, "SAMPLE_MARKER_FILE": str(marker)})
            started[mode].marker = marker
        yield started
    finally:
        for host in started.values():
            host.stop()


def test_the_functions_run_in_the_runtimes_worker_process(hosts):
    runtime, direct = hosts["runtime"], hosts["direct"]
    where = requests.get(f"{runtime.url}/api/whoami", timeout=10).json()
    assert where["runtime"] is True and where["python"][:2] >= [3, 13]
    assert where["pid"] != runtime.process.pid  # not devhost's process: the worker's
    assert f"worker pid {where['pid']}" in runtime.log
    called_directly = requests.get(f"{direct.url}/api/whoami", timeout=10).json()
    assert called_directly["pid"] == direct.process.pid and called_directly["runtime"] is False


def test_a_log_from_a_function_is_its_user_category(hosts):
    host = hosts["runtime"]
    requests.get(f"{host.url}/api/whoami", timeout=10)
    assert "WARNING Function.whoami.User: [sample] whoami ran" in host.wait_log("whoami ran")
    assert "Function name: whoami" not in host.log  # the runtime's System logs stay out unless asked for


def test_timers_and_queue_messages_reach_the_functions_through_the_runtime(hosts):
    host = hosts["runtime"]
    for name, body in (("tick", {}), ("work", {"input": "job-7"})):
        answer = requests.post(f"{host.url}/admin/functions/{name}", json=body, timeout=10)
        assert answer.status_code == 202
    assert host.marker is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "work job-7" not in (host.marker.read_text() if host.marker.exists() else ""):
        time.sleep(0.05)
    assert host.marker.read_text().splitlines() == ["tick past_due=False", "work job-7"]
    failed = requests.post(f"{host.url}/admin/functions/tick_fails", json={}, timeout=10)
    assert failed.status_code == 500 and "timer bug" in host.wait_log("timer bug")


# The comparison: the same requests through both paths, the same answers. Headers that matter: the content type,
# the function's own headers, Allow, CORS, cookies; not Date, Server or Content-Length of an equal body.
COMPARED_HEADERS = ("content-type", "x-sample", "vary", "allow", "set-cookie", "www-authenticate", "access-control-allow-origin")
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/hello/ann?q=1", {}),
    ("GET", "/api/hello/world", {}),
    ("POST", "/api/echo", {"data": b"\x00binary\xff"}),
    ("PUT", "/api/echo", {"data": b""}),
    ("GET", "/api/inspect/one/two?x=1&x=2&empty=", {"headers": {"X-Custom": "c"}}),
    ("POST", "/api/inspect/one", {"data": "caf\u00e9".encode(), "headers": {"Content-Type": "text/plain; charset=utf-8"}}),
    ("GET", "/api/letters/abc", {}),
    ("GET", "/api/letters/123", {}),
    ("DELETE", "/api/files/a/b%20c.txt", {}),
    ("GET", "/api/items/42", {}),
    ("PATCH", "/api/items/42", {}),
    ("GET", "/api/boom", {}),
    ("GET", "/api/boom-sync", {}),
    ("GET", "/api/cookies", {}),
    ("GET", "/api/headers", {"headers": {"Authorization": "Bearer " + "x" * 500}}),
    ("GET", "/api/nothing-here", {}),
    ("POST", "/admin/functions/tick", {"json": {}}),
    ("POST", "/admin/functions/work", {"json": {"input": "compare"}}),
    ("POST", "/admin/functions/nope", {"json": {}}),
]


def answer(base: str, method: str, path: str, options: dict[str, Any]) -> dict[str, Any]:
    response = requests.request(method, base + path, timeout=10, allow_redirects=False, **options)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.content
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body["url"] = body["url"].replace(base, "<base>")
    headers = {name: response.raw.headers.getlist(name) for name in COMPARED_HEADERS if name in response.headers}
    return {"status": response.status_code, "headers": headers, "body": body}


@pytest.mark.parametrize("method, path, options", REQUESTS, ids=[f"{m} {p}" for m, p, _ in REQUESTS])
def test_both_paths_answer_the_same(hosts, method, path, options):
    direct = answer(hosts["direct"].url, method, path, options)
    runtime = answer(hosts["runtime"].url, method, path, options)
    assert runtime == direct


def test_the_comparison_sees_a_difference_where_there_is_one(hosts):
    """The comparison above can fail: two different requests do not compare equal."""
    base = hosts["runtime"].url
    assert answer(base, "GET", "/api/hello/ann", {}) != answer(base, "GET", "/api/hello/bob", {})


# ----------------------------------------------------------------------------- start-up and failure


def test_an_app_the_runtime_cannot_index_stops_devhost_with_the_reason(tmp_path: Path):
    (tmp_path / "function_app.py").write_text("import azure.functions as func\nraise ImportError('no such thing: acme')\n")
    result = run_devhost_until_exit(tmp_path, {"DEVHOST_WORKER": "runtime"})
    assert result.returncode == 3
    assert "devhost stopped" in result.stderr and "no such thing: acme" in result.stderr
    assert "DEVHOST_URL=" not in result.stdout


def test_devhost_stops_when_its_worker_dies(tmp_path: Path):
    host = start_devhost(sample_dir(tmp_path), {"DEVHOST_WORKER": "runtime"})
    try:
        worker_pid = requests.get(f"{host.url}/api/whoami", timeout=10).json()["pid"]
        os.kill(worker_pid, signal.SIGKILL)
        assert host.process.wait(timeout=15) == 3
        assert "the functions' worker process exited" in host.wait_log("worker process exited")
    finally:
        host.stop()


def test_ctrl_c_stops_devhost_and_its_worker_cleanly(tmp_path: Path):
    """SIGINT reaches the whole process group in a terminal; devhost shuts the worker down in order and exits 0."""
    host = start_devhost(sample_dir(tmp_path), {"DEVHOST_WORKER": "runtime"})
    worker_pid = requests.get(f"{host.url}/api/whoami", timeout=10).json()["pid"]
    os.kill(worker_pid, signal.SIGINT)  # what the terminal sends the worker too
    assert requests.get(f"{host.url}/api/whoami", timeout=10).status_code == 200  # the worker ignores it
    assert host.stop(signal.SIGINT) == 0
    assert "worker process exited" not in host.log
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)


def test_host_json_levels_filter_the_workers_logs(tmp_path: Path):
    app_dir = sample_dir(tmp_path, host_json={"version": "2.0", "logging": {"logLevel": {"Function.whoami": "Error"}}})
    host = start_devhost(app_dir, {"DEVHOST_WORKER": "runtime", "DEVHOST_WORKER_SYSTEM_LOGS": "true"})
    try:
        assert json.loads(requests.get(f"{host.url}/api/whoami", timeout=10).text)["runtime"] is True
        log = host.wait_log("/api/whoami 200")
        assert "whoami ran" not in log  # Function.whoami.User at Warning, under the Error the host.json asks for
        assert "Worker.Python.System: [azure.functions] Function name: whoami" in log  # asked for
    finally:
        host.stop()
