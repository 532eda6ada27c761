"""One host instance of the rig: ``python -m devhost`` on a fixed loopback port, its log in a file, kill and restart.

The port stays the instance's own across restarts, so the load balancer's config never changes (as an
instance's address behind the platform's front end). The environment is built the way the API tests start
the app: the app's settings blanked first, so a developer's ``local.settings.json`` cannot leak in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from localdev.processes import close_pipes, stop_process

ROOT = Path(__file__).resolve().parents[2]
#: Settings of the app and the host that must come from the rig, never from the caller's environment.
SCRUBBED_PREFIXES = ("ACS_", "AUTH_", "TOKEN_", "REVOCATION_", "AzureWebJobs", "WEBSITE_", "DEVHOST_", "IDENTITY_", "MAX_SESSION")


def app_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without app settings, every sample setting blanked, then ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SCRUBBED_PREFIXES)}
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    env.update({name: "" for name in sample["Values"] if name != "FUNCTIONS_WORKER_RUNTIME"})
    env.update({"PYTHONUNBUFFERED": "1", "DEVHOST_CORS": ""})
    env.update(settings)
    return env


@dataclass
class HostInstance:
    """A devhost process serving function_app on ``port``; stderr (its log) appended to ``log_path``."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[str] | None = None
    starts: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)  # (time.time(), "start"/"kill"/"stop")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start the process (not waiting for it: see :meth:`wait_ready`)."""
        if self.alive:
            raise RuntimeError(f"instance {self.name} is already running")
        self.starts += 1
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"==== fleet: start #{self.starts} of {self.name} at {datetime.now(UTC).isoformat()}\n")
        log_file = self.log_path.open("a", encoding="utf-8")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devhost", "--host", "127.0.0.1", "--port", str(self.port), "--app-dir", str(ROOT)],
                cwd=ROOT,
                env={**self.env, "DEVHOST_INSTANCE_ID": self.name},
                stdout=subprocess.PIPE,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        finally:
            log_file.close()  # the child has its own descriptor
        self.events.append((time.time(), "start"))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until devhost prints ``DEVHOST_URL=`` (it listens then); raises with the log's tail otherwise."""
        process = self.process
        if process is None or process.stdout is None:
            raise RuntimeError(f"instance {self.name} was not launched")
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline() if process.stdout else ""), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith("DEVHOST_URL="):
            self.stop()
            raise RuntimeError(f"instance {self.name} did not start within {timeout:.0f} s:\n{self.log_text()[-3000:]}")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # devhost prints nothing more; keep the pipe drained

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted instance: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            close_pipes(self.process)
            self.events.append((time.time(), "kill"))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (devhost lets running functions and storage retries finish first)."""
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout)
            self.events.append((time.time(), "stop"))
        elif self.process is not None:
            close_pipes(self.process)

    def terminate(self) -> None:
        """SIGTERM without waiting (stopping several instances at once)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
