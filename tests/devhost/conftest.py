"""Fixtures for devhost's tests: the sample app, in a subprocess or in-process on a real loopback socket."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from devhost import HostSettings, create_web_app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).resolve().parent / "sample_app"


class Host:
    """A devhost subprocess: its URL, stdout/stderr lines so far, and the process."""

    def __init__(self, process: subprocess.Popen, url: str, stdout: list[str], stderr: list[str]) -> None:
        self.process, self.url, self.stdout, self.stderr = process, url, stdout, stderr

    @property
    def log(self) -> str:
        return "".join(self.stderr)

    def wait_log(self, *texts: str, timeout: float = 5.0) -> str:
        """The stderr so far, once it contains every one of ``texts`` (the reader thread may lag)."""
        deadline = time.monotonic() + timeout
        while not all(text in self.log for text in texts) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.log

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
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVHOST_", "SAMPLE_"))}
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

    The server runs on the test's event loop, so talk to it with the returned aiohttp session.
    """
    servers: list[TestServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(settings: HostSettings | None = None) -> tuple[str, aiohttp.ClientSession]:
        server = TestServer(create_web_app(sample_module.app, settings or HostSettings()), host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        sessions.append(aiohttp.ClientSession())
        return f"http://127.0.0.1:{server.port}", sessions[-1]

    yield start
    for session in sessions:
        await session.close()
    for server in servers:
        await server.close()
