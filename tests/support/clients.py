"""Helpers for the real-client tests (``tests/app/clients``): Node scripts, devhost log counts, the web sample.

Those tests use the app tests' stand-ins (Azurite, the ACS emulator, the app under devhost), so they
exercise the same HTTP surface a frontend or a server-side caller would. Fixture: ``sample_site``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.app_process import AppProcess

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "samples" / "web"
CLIENTS_DIR = ROOT / "tests" / "app" / "clients"

requires_node = pytest.mark.skipif(
    shutil.which("node") is None, reason="Node.js 20+ is required (make test installs the JS packages with npm)"
)


def count_requests(app: AppProcess, method: str, path: str, status: int) -> int:
    """How many ``method path`` requests devhost answered with ``status`` (its one log line per request)."""
    pattern = re.compile(rf" {re.escape(method)} {re.escape(path)} {status} ")
    return sum(1 for line in list(app.log_lines) if pattern.search(line))


def await_count(app: AppProcess, method: str, path: str, status: int, at_least: int, timeout: float = 10) -> int:
    """``count_requests`` once it reaches ``at_least`` (or the timeout): the log is read by a thread."""
    deadline = time.monotonic() + timeout
    while (count := count_requests(app, method, path, status)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def node_env(**extra: str) -> dict[str, str]:
    """Node sees the repo's node_modules however the script is started."""
    return {**os.environ, "NODE_PATH": str(ROOT / "node_modules"), **extra}


def run_node(script: Path, *args: str, timeout: float = 90, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a Node script from the repo root; bounded, output captured."""
    return subprocess.run(
        ["node", str(script), *args], cwd=ROOT, env=env or node_env(), capture_output=True, text=True, timeout=timeout
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture(scope="module")
def sample_site() -> Iterator[str]:
    """samples/web, freshly bundled, served from its own origin (another loopback port than the API's).

    A separate origin is the point: the page's calls are cross-origin, so the API's CORS is exercised.
    """
    build = run_node(SAMPLE_DIR / "build.mjs", timeout=60)
    assert build.returncode == 0, build.stderr[-2000:]
    handler = functools.partial(_QuietHandler, directory=str(SAMPLE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
