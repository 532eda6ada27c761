"""The whole app over real HTTP: ``function_app`` served by devhost, against Azurite and the ACS emulator.

Fixtures (registered in ``tests/conftest.py``): ``azurite`` and ``emulator`` (one each per
session, on free loopback ports), ``app_factory`` (start app processes with settings of the
test's choosing), ``dev_app`` (the app in dev auth mode) and ``user`` (a fresh end user).
Every app process gets its own identity table, so tests never see each other's users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from localdev.azurite import start_azurite
from localdev.emulator_process import start_emulator
from localdev.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    with start_azurite(location=tmp_path_factory.mktemp("azurite"), queue_port=0) as process:
        yield process


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    with start_emulator(cert_dir=tmp_path_factory.mktemp("emulator-cert")) as process:
        yield process


@dataclass
class AppProcess:
    """A devhost subprocess serving function_app with a given environment."""

    url: str
    process: subprocess.Popen
    table_name: str
    log_lines: list[str] = field(default_factory=list)
    #: the settings the app was started with (beyond the blanked sample)
    env: dict[str, str] = field(default_factory=dict)

    def api(self, path: str) -> str:
        return f"{self.url}/api/{path.lstrip('/')}"

    def log_text(self) -> str:
        return "".join(self.log_lines)

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains ``text`` (a thread reads the process's stderr: it may lag a little)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.log_text()

    def stop(self) -> None:
        stop_process(self.process)


def launch_app(env_overrides: dict[str, str]) -> AppProcess:
    """Start ``python -m devhost --port 0`` with a clean app environment and wait for its URL."""
    table_name = "ids" + uuid.uuid4().hex[:16]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACS_", "AUTH_", "TOKEN_", "AzureWebJobs", "WEBSITE_"))}
    # Blank every app setting so a developer's local.settings.json cannot leak into a test.
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    env.update({name: "" for name in sample["Values"] if name != "FUNCTIONS_WORKER_RUNTIME"})
    env.update({"IDENTITY_TABLE_NAME": table_name, "PYTHONUNBUFFERED": "1", "DEVHOST_CORS": ""})
    env.update(env_overrides)
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--host", "127.0.0.1", "--port", "0", "--app-dir", str(ROOT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    app = AppProcess(url="", process=process, table_name=table_name, env=dict(env_overrides))
    threading.Thread(target=lambda: app.log_lines.extend(iter(process.stderr.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("DEVHOST_URL="):
            app.url = line.strip().split("=", 1)[1]
            return app
        if not line and process.poll() is not None:
            break
    app.stop()
    raise RuntimeError("devhost did not start:\n" + app.log_text())


@pytest.fixture(scope="session")
def app_factory(azurite, emulator) -> Iterator:
    """Start app processes with the local stand-ins wired in; all stopped at the end."""
    started: list[AppProcess] = []

    def start(**overrides: str) -> AppProcess:
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            "ACS_CONNECTION_STRING": emulator.connection_string,
            "ACS_CA_BUNDLE": str(emulator.cert_path),
            "AUTH_MODE": "dev",
            "TOKEN_RATE_LIMIT_PER_MINUTE": "1000",
        }
        env.update(overrides)
        app = launch_app(env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture(scope="module")
def dev_app(app_factory) -> AppProcess:
    """The app in dev auth mode (X-Dev-User), sharing the session's emulator and Azurite."""
    return app_factory()


@pytest.fixture
def user() -> str:
    """A fresh end user for each test."""
    return f"user-{uuid.uuid4().hex[:12]}"


def as_user(name: str, **extra: str) -> dict[str, str]:
    return {"X-Dev-User": name, **extra}


def post_json(url: str, body=None, headers=None, **kwargs) -> requests.Response:
    return requests.post(url, json=body, headers=headers or {}, timeout=30, **kwargs)
