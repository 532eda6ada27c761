"""Start Azurite (the storage emulator, pinned in package.json) on loopback and wait until it serves.

Table always; Queue and Blob when asked for (Blob holds the Functions host's own state, such as the
timer triggers' singleton locks and schedule status, see ``devhost/singleton.py``).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from localdev.processes import close_pipes, stop_process

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "node_modules" / ".bin"
HOST = "127.0.0.1"
#: The development account's well-known key (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COMMON_FLAGS = ["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Azurite exited with code {process.returncode}: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    close_pipes(process)
    raise RuntimeError(f"Azurite did not listen on {HOST}:{port} within {timeout:.0f} s")


@dataclass
class AzuriteProcess:
    table_port: int
    queue_port: int | None
    processes: list[subprocess.Popen] = field(default_factory=list)
    location: Path | None = None
    persistent: bool = False
    blob_port: int | None = None

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{DEV_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str | None:
        return None if self.queue_port is None else f"http://{HOST}:{self.queue_port}/{DEV_ACCOUNT}"

    @property
    def blob_endpoint(self) -> str | None:
        return None if self.blob_port is None else f"http://{HOST}:{self.blob_port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        parts = [
            "DefaultEndpointsProtocol=http",
            f"AccountName={DEV_ACCOUNT}",
            f"AccountKey={DEV_KEY}",
            f"TableEndpoint={self.table_endpoint}",
        ]
        if self.queue_endpoint:
            parts.append(f"QueueEndpoint={self.queue_endpoint}")
        if self.blob_endpoint:
            parts.append(f"BlobEndpoint={self.blob_endpoint}")
        return ";".join(parts) + ";"

    def _services(self) -> list[tuple[str, str, str, int]]:
        services = [("azurite-table", "--tableHost", "--tablePort", self.table_port)]
        if self.queue_port is not None:
            services.append(("azurite-queue", "--queueHost", "--queuePort", self.queue_port))
        if self.blob_port is not None:
            services.append(("azurite-blob", "--blobHost", "--blobPort", self.blob_port))
        return services

    def _launch(self) -> None:
        assert self.location is not None
        flags = COMMON_FLAGS if not self.persistent else [f for f in COMMON_FLAGS if f != "--inMemoryPersistence"]
        extra = ["--location", str(self.location)] if self.persistent else []
        try:
            for binary, host_flag, port_flag, port in self._services():
                process = subprocess.Popen(
                    [str(BIN / binary), host_flag, HOST, port_flag, str(port), *flags, *extra],
                    cwd=self.location,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                self.processes.append(process)
                wait_for_port(port, process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Ctrl-C first (Azurite then saves its data when persistent), then the usual SIGTERM/SIGKILL."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            stop_process(process)
        self.processes.clear()

    def restart(self) -> None:
        """Stop and start again on the same ports (with ``persistent=True`` the data survives)."""
        self.stop()
        self._launch()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_azurite(
    *,
    table_port: int = 0,
    queue_port: int | None = None,
    blob_port: int | None = None,
    location: Path,
    persistent: bool = False,
) -> AzuriteProcess:
    """Azurite's Table service (and Queue and Blob, if a port is given; 0 = any free port), in memory.

    ``location`` is the working directory (Azurite refuses --location with in-memory persistence);
    with ``persistent=True`` the data lives there instead, so :meth:`AzuriteProcess.restart` keeps it.
    """
    if not (BIN / "azurite-table").exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make setup does it)")
    location.mkdir(parents=True, exist_ok=True)
    azurite = AzuriteProcess(table_port=table_port or free_port(), queue_port=None, location=location, persistent=persistent)
    if queue_port is not None:
        azurite.queue_port = queue_port or free_port()
    if blob_port is not None:
        azurite.blob_port = blob_port or free_port()
    azurite._launch()  # noqa: SLF001 - the one place that starts it
    return azurite
