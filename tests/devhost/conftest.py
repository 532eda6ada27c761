"""Fixtures for devhost's tests: the sample app, in a subprocess or in-process on a real loopback socket."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests

from devhost import HostSettings, RunningHost, start_server
from localdev.processes import close_pipes

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).resolve().parent / "sample_app"


class Host:
    """A devhost subprocess: its URL, stdout/stderr lines so far, and the process."""

    def __init__(self, process: subprocess.Popen, url: str, stdout: list[str], stderr: list[str]) -> None:
        self.process, self.url, self.stdout, self.stderr = process, url, stdout, stderr
        #: a file the sample app writes when a trigger runs (set by the fixtures that use one)
        self.marker: Path | None = None

    @property
    def log(self) -> str:
        return "".join(self.stderr)

    def wait_log(self, *texts: str, timeout: float = 5.0) -> str:
        """The stderr so far, once it contains every one of ``texts`` (the reader thread may lag)."""
        deadline = time.monotonic() + timeout
        while not all(text in self.log for text in texts) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.log

    def log_lines_during(self, action: Callable[[], object]) -> list[str]:
        """The stderr lines ``action`` caused: those between the access lines of a marker request before and after it."""
        start = self._mark()
        action()
        end = self._mark()
        return self.stderr[start : end - 1]

    def _mark(self) -> int:
        """Log a marker request; the index just past its access line (earlier output has been read by then)."""
        marker = uuid.uuid4().hex
        requests.get(f"{self.url}/api/hello/{marker}", timeout=10)
        self.wait_log(f"/api/hello/{marker} 200")
        return next(index for index, line in enumerate(self.stderr) if marker in line) + 1

    def stop(self, signum: int | None = None) -> int:
        if self.process.poll() is None:
            if signum is None:
                self.process.terminate()
            else:
                self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            if self.process.poll() is not None:
                close_pipes(self.process)


def sample_dir(tmp: Path, host_json: dict | None = None, local_settings: dict | None = None) -> Path:
    """A copy of the sample app with the given host.json / local.settings.json (none when None)."""
    shutil.copy(SAMPLE / "function_app.py", tmp / "function_app.py")
    if host_json is not None:
        (tmp / "host.json").write_text(json.dumps(host_json), encoding="utf-8")
    if local_settings is not None:
        (tmp / "local.settings.json").write_text(json.dumps(local_settings), encoding="utf-8")
    return tmp


def start_devhost(app_dir: Path, env: dict[str, str], *args: str) -> Host:
    """python -m devhost --app-dir APP_DIR [args] (default --port 0), until it prints DEVHOST_URL=."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVHOST_", "SAMPLE_", "FUNCTIONS_REQUEST_"))}
    full_env.update(env)
    full_env["PYTHONUNBUFFERED"] = "1"
    port_args = [] if "--port" in args or "--no-port" in args else ["--port", "0"]
    command = [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), *port_args, *(a for a in args if a != "--no-port")]
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout: list[str] = []
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()
    for line in process.stdout:
        stdout.append(line)
        if line.startswith("DEVHOST_URL="):
            threading.Thread(target=lambda: stdout.extend(process.stdout), daemon=True).start()
            return Host(process, line.strip().split("=", 1)[1], stdout, stderr)
    process.wait(timeout=10)
    raise RuntimeError("devhost did not start: " + "".join(stderr))


def run_devhost_until_exit(app_dir: Path, env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """python -m devhost for a start-up that must fail: its exit code, stdout and stderr."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVHOST_", "SAMPLE_", "FUNCTIONS_REQUEST_"))}
    full_env.update(env)
    command = [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", "0"]
    return subprocess.run(command, check=False, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_http(
    url: str, data: bytes, *, send_after: Callable[[socket.socket], None] | None = None, timeout: float = 10
) -> RawAnswer:
    """Send ``data`` as is on a new connection (no client would send malformed requests) and read one answer.

    ``send_after`` may keep sending (a body) while the answer is awaited; errors from it are ignored,
    since a server that refuses a body may close before it is all sent.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        if send_after is not None:
            try:
                send_after(sock)
            except OSError:
                pass
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an answer: {received[:200]!r}")
            received += chunk
        head, body = received.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawAnswer(int(status_line.split()[1]), headers, body[:length], received)


@pytest.fixture(scope="session")
def sample_module() -> Any:
    """The sample app imported in this process under its own name (not to clash with the real function_app)."""
    name = "devhost_tests_sample_function_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SAMPLE / "function_app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
async def inproc(sample_module):
    """``base, session = await inproc(HostSettings(...))``: the sample app served in-process on 127.0.0.1, port 0.

    The server is the one ``python -m devhost`` runs (``start_server``), on the test's event loop,
    so talk to it with the returned aiohttp session.
    """
    servers: list[RunningHost] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(settings: HostSettings | None = None) -> tuple[str, aiohttp.ClientSession]:
        servers.append(await start_server(sample_module.app, settings or HostSettings()))
        sessions.append(aiohttp.ClientSession())
        return servers[-1].url, sessions[-1]

    yield start
    for session in sessions:
        await session.close()
    for server in servers:
        await server.stop()
