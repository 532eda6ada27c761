"""A local Application Insights ingestion endpoint, and what tests need around it.

``Ingestion`` is an HTTP server on loopback that accepts the track calls the Azure Monitor
exporter makes (``POST /v2.1/track``, gzip or not), keeps every body, and answers as the
service does (``itemsReceived``/``itemsAccepted``). Tests point a connection string at it
(:meth:`Ingestion.connection_string`) in a subprocess (``configure_azure_monitor`` installs
process-global providers) whose environment turns off what would call Microsoft's endpoints
(:func:`exporter_env`: statsbeat, the Azure resource detectors).
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from tests.support import REPO_ROOT

#: An instrumentation key of zeros: the exporter needs one, the stand-in ignores it.
INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000000"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Accepts Application Insights track calls and keeps their bodies."""

    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        self.received.append(body)
        try:
            count = len(json.loads(body)) if self.path.startswith("/v2") else 0
        except ValueError:
            count = 0
        answer = json.dumps({"itemsReceived": count, "itemsAccepted": count, "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


class Ingestion:
    """What a running stand-in has received."""

    def __init__(self, url: str, received: list[bytes]) -> None:
        self.url = url
        self.received = received

    @property
    def connection_string(self) -> str:
        """Telemetry and live metrics both to this server."""
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url};LiveEndpoint={self.url}"

    def text(self) -> str:
        """Everything received, as text (to search for what must never be sent)."""
        return "\n".join(body.decode("utf-8", "replace") for body in list(self.received))

    def envelopes(self) -> list[dict[str, Any]]:
        """Every telemetry item received (the track calls' JSON arrays)."""
        return [item for body in list(self.received) if body.lstrip().startswith(b"[") for item in json.loads(body)]

    def metric_points(self) -> list[dict[str, Any]]:
        """Every metric data point as ``{"name", "value", "count", "min", "max", "properties"}``."""
        points = []
        for envelope in self.envelopes():
            data = envelope.get("data", {})
            if data.get("baseType") != "MetricData":
                continue
            base = data["baseData"]
            for metric in base.get("metrics", []):
                points.append({**metric, "properties": base.get("properties", {})})
        return points

    def wait_for(self, predicate: Callable[[Ingestion], bool], timeout: float = 30) -> bool:
        """Poll until ``predicate(self)`` holds (the exporter sends on its own interval); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.2)
        return predicate(self)


@contextmanager
def running_ingestion() -> Iterator[Ingestion]:
    """A stand-in on a free loopback port for the duration of the block."""
    received: list[bytes] = []
    handler = type("Handler", (_Handler,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Ingestion(f"http://127.0.0.1:{server.server_address[1]}/", received)
    finally:
        server.shutdown()
        server.server_close()


def exporter_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without Application Insights or OpenTelemetry settings, with nothing calling Microsoft."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel",
        **(extra or {}),
    )
    return env


def run_child(code: str, extra_env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (fresh OpenTelemetry providers) with :func:`exporter_env`."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=exporter_env(extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
