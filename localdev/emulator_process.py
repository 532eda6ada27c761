"""Start the ACS Identity emulator (``python -m emulator``) as a subprocess and drive its control endpoints.

Standard library only, so sync and async tests alike can use it::

    with start_emulator(cert_dir=tmp_path) as emulator:
        client = CommunicationIdentityClient.from_connection_string(
            emulator.connection_string, connection_verify=str(emulator.cert_path))
        emulator.set_faults(throttleNext=1)
        emulator.validate(token)   # {"valid": ..., "reason": ...}

Two emulators with different ``resource_id`` act as two ACS resources: each answers 401 ``IdentityNotOwned``
for the other's identity ids. ``identity(id)`` and ``peaks()`` tell a test what ACS saw.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

from localdev.processes import close_pipes, stop_process

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "ACS_CONNECTION_STRING="
CERT_NAME = "emulator-cert.pem"


class EmulatorProcess:
    """A running emulator: its connection string, certificate, identity header and control calls."""

    def __init__(
        self,
        connection_string: str,
        cert_path: Path | None,
        identity_header: str,
        process: subprocess.Popen[str],
        stderr_lines: list[str],
    ) -> None:
        self.connection_string = connection_string
        self.cert_path = cert_path
        self.identity_header = identity_header
        self.process = process
        self.stderr_lines = stderr_lines
        self.extra_stdout: list[str] = []
        parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        self.endpoint = parts["endpoint"].rstrip("/")  # e.g. https://127.0.0.1:PORT
        self.access_key = parts["accesskey"]
        self._ssl = ssl.create_default_context(cafile=str(cert_path)) if cert_path else None

    @property
    def msi_endpoint(self) -> str:
        """The value for IDENTITY_ENDPOINT (App Service managed identity protocol)."""
        return self.control_url("msi/token")

    def control_url(self, path: str) -> str:
        return f"{self.endpoint}/_emulator/{path.lstrip('/')}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A control call; raises urllib.error.HTTPError on a 4xx/5xx answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.control_url(path), data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10, context=self._ssl) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    @property
    def resource_id(self) -> str:
        """The ACS resource GUID this emulator plays; its identity ids are ``8:acs:<resource_id>_…``."""
        return str(self.stats()["resourceId"])

    def set_faults(self, **faults: Any) -> dict:
        """e.g. ``set_faults(throttleNext=1, retryAfterSeconds=1)``; returns the current settings."""
        return self.call("PUT", "faults", faults)

    def faults(self) -> dict:
        return self.call("GET", "faults")

    def set_limits(self, **limits: dict) -> dict:
        """e.g. ``set_limits(issue={"count": 3, "windowSeconds": 30})``; returns every limit."""
        return self.call("PUT", "limits", limits)

    def stats(self) -> dict:
        return self.call("GET", "stats")

    def validate(self, token: str) -> dict:
        return self.call("POST", "validate", {"token": token})

    def reset(self, *, state: bool = False) -> None:
        """Clear counters, call logs, peaks, faults and rate-limit windows (and identities with ``state=True``)."""
        self.call("POST", "reset" + ("?state=true" if state else ""))

    def identity(self, identity_id: str, *, before: float | None = None) -> dict:
        """What this resource saw of one identity since the last reset, e.g.::

            {"exists": True, "deleted": False, "totalCalls": 3,
             "calls": {"issue": {"count": 2, "succeeded": 2, "statuses": {"200": 2},
                                 "first": t, "last": t, "recent": [{"at": t, "status": 200}, ...]}, ...},
             "validFrom": t_or_None, "liveTokens": 1}

        With ``before`` (epoch seconds), also ``liveTokensIssuedBefore``: 0 proves every token issued before then is dead.
        Times are epoch seconds (``time.time()``).
        """
        query = "" if before is None else f"?before={before!r}"
        return self.call("GET", f"identities/{urllib.parse.quote(identity_id, safe='')}{query}")

    def calls(self, identity_id: str) -> dict[str, int]:
        """Calls per operation this resource received for ``identity_id`` since the last reset ({} when none)."""
        return {operation: calls["count"] for operation, calls in self.identity(identity_id)["calls"].items()}

    def identities(self) -> dict[str, dict[str, int]]:
        """Every identity that received a call since the last reset: {id: {operation: count}}."""
        return dict(self.call("GET", "identities")["identities"])

    def peaks(self) -> dict:
        """{"windowSeconds": 30.0, "since": t, "operations": {"revoke": {"peak": n, "reachedAt": t}, ...}}: successes only."""
        return self.call("GET", "peaks")

    def peak(self, operation: str) -> int:
        """The most successful ``operation`` calls (create, issue, revoke, delete, teams) in any 30-second window."""
        return int(self.peaks()["operations"].get(operation, {}).get("peak", 0))

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); the exit code."""
        stop_process(self.process, timeout)
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    *extra_args: str,
    cert_dir: Path,
    http: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    resource_id: str | None = None,
    resource_name: str | None = None,
) -> EmulatorProcess:
    """``python -m emulator --port 0 --cert-dir DIR …`` from the repo root; ready once it prints its line.

    ``resource_id`` (a GUID) and ``resource_name`` say which ACS resource it plays (default: a random id);
    give two emulators different ids to have two resources. ``extra_args`` come last, so they win
    (e.g. ``"--identity-header", "x"``). ``env`` replaces the environment (default: this process's).
    """
    identity_header = secrets.token_hex(16)
    args = [sys.executable, "-m", "emulator", "--port", "0", "--cert-dir", str(cert_dir), "--identity-header", identity_header]
    if http:
        args.append("--http")
    if resource_id is not None:
        args += ["--resource-id", resource_id]
    if resource_name is not None:
        args += ["--resource-name", resource_name]
    args.extend(extra_args)
    if "--identity-header" in extra_args:
        identity_header = extra_args[len(extra_args) - 1 - extra_args[::-1].index("--identity-header") + 1]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=os.environ.copy() if env is None else env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.stdout, process.stderr
    assert stdout is not None and stderr is not None  # both are pipes
    stderr_lines: list[str] = []
    threading.Thread(target=lambda: stderr_lines.extend(stderr), daemon=True).start()
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = first_line[0].strip() if first_line else ""
    if not line.startswith(PREFIX):
        if process.poll() is None:
            process.kill()
        process.wait()
        time.sleep(0.1)  # let the stderr reader drain
        close_pipes(process)
        raise RuntimeError(f"the ACS emulator did not start (stdout: {line!r}):\n" + "".join(stderr_lines))
    emulator = EmulatorProcess(
        line[len(PREFIX) :], None if http else Path(cert_dir) / CERT_NAME, identity_header, process, stderr_lines
    )
    # keep draining stdout (the emulator should print nothing more; tests can check extra_stdout)
    threading.Thread(target=lambda: emulator.extra_stdout.extend(stdout), daemon=True).start()
    return emulator
