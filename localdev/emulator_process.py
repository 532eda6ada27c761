"""Start the ACS emulator as a subprocess and talk to its control endpoints (stdlib only)."""

from __future__ import annotations

import json
import queue
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "ACS_CONNECTION_STRING="


@dataclass
class EmulatorProcess:
    connection_string: str
    cert_path: Path | None
    identity_header: str
    process: subprocess.Popen
    log_lines: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        part = next(p for p in self.connection_string.split(";") if p.lower().startswith("endpoint="))
        return part.split("=", 1)[1].rstrip("/")

    @property
    def access_key(self) -> str:
        part = next(p for p in self.connection_string.split(";") if p.lower().startswith("accesskey="))
        return part.split("=", 1)[1]

    def control_url(self, path: str) -> str:
        return f"{self.endpoint}/_emulator/{path.lstrip('/')}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.control_url(path), data=data, method=method, headers={"Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=str(self.cert_path)) if self.cert_path else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def set_faults(self, **faults: Any) -> dict:
        return self._call("PUT", "faults", faults)

    def set_limits(self, **limits: dict) -> dict:
        return self._call("PUT", "limits", limits)

    def stats(self) -> dict:
        return self._call("GET", "stats")

    def validate(self, token: str) -> dict:
        return self._call("POST", "validate", {"token": token})

    def reset(self, *, state: bool = False) -> None:
        self._call("POST", "reset" + ("?state=true" if state else ""))

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(*extra_args: str, cert_dir: Path, http: bool = False, env: dict[str, str] | None = None, timeout: float = 30.0) -> EmulatorProcess:
    """``python -m emulator --port 0 …`` (later flags win), ready when it prints its connection string."""
    identity_header = secrets.token_hex(16)
    args = [sys.executable, "-m", "emulator", "--port", "0", "--cert-dir", str(cert_dir), "--identity-header", identity_header]
    if http:
        args.append("--http")
    process = subprocess.Popen([*args, *extra_args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    log_lines: list[str] = []
    threading.Thread(target=lambda: log_lines.extend(process.stderr), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith(PREFIX):
            return EmulatorProcess(
                connection_string=line.strip()[len(PREFIX):],
                cert_path=None if http else cert_dir / "emulator-cert.pem",
                identity_header=identity_header,
                process=process,
                log_lines=log_lines,
            )
    process.kill()
    time.sleep(0.2)
    raise RuntimeError("the ACS emulator did not start:\n" + "".join(log_lines))
