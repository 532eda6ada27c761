"""HAProxy in front of the rig's host instances: a generated config, one process, its runtime stats.

Why HAProxy (Debian's 2.6) rather than nginx (Debian's 1.22, open source):

- **Active health checks** (``option httpchk`` on ``/api/health``, every 500 ms): a dead instance leaves the
  pool within about a second and a restarted one rejoins by itself. Open-source nginx has passive checks only
  (``max_fails``), so it keeps sending traffic to a dead instance until requests fail.
- **Retries that cover POST**: ``retry-on conn-failure empty-response`` with ``option redispatch`` resends a
  request refused by, or cut off with no answer from, a killed instance to another one. nginx's
  ``proxy_next_upstream`` does not retry non-idempotent requests (POST) unless told to retry every failure.
- ``observe layer4`` marks an instance down on its first refused connection, before the next health check.
- Answers pass through untouched (``Retry-After``, JSON bodies, no response buffering surprises); the errors
  HAProxy itself must produce (no instance left, an answer cut off after every retry) are a JSON 503 with
  ``Retry-After: 1``, like the app's own, so clients need one retry rule.
- The runtime API (``show stat`` on a Unix socket) tells the rig which instances are up.

Azure's front end is not HAProxy: this rig stands in for "several instances behind a load balancer", and the
JSON 503 for the balancer's own errors is this rig's choice (the platform's front end answers such cases with
its own pages).
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localdev.processes import stop_process

HOST = "127.0.0.1"
#: The header telling which instance answered (absent on the balancer's own answers, which say ``haproxy``).
INSTANCE_HEADER = "X-Fleet-Instance"
#: Azure's front end cuts an HTTP request off after 230 s; the balancer does the same.
SERVER_TIMEOUT_SECONDS = 230
ERROR_BODY = b'{"error": {"code": "unavailable", "message": "No instance could answer the request; retry later."}}'
INSTALL_HINT = "HAProxy is not installed: run `sh scripts/install-loadbalancer.sh` (Debian's haproxy package)"


def find_haproxy() -> str:
    """The haproxy binary (root's PATH has /usr/sbin, a user's may not)."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


def error_response() -> bytes:
    """The balancer's own error: a complete HTTP response, as HAProxy's ``errorfile`` wants it."""
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        "Retry-After: 1\r\n"
        "Cache-Control: no-store\r\n"
        f"{INSTANCE_HEADER}: haproxy\r\n"
        f"Content-Length: {len(ERROR_BODY)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + ERROR_BODY


def render_config(port: int, servers: list[tuple[str, int]], stats_socket: Path, error_file: Path) -> str:
    """haproxy.cfg for a frontend on ``127.0.0.1:port`` and one backend of ``servers`` (name, port)."""
    lines = [
        "global",
        "    maxconn 8192",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    log stdout format raw local0 info",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    timeout connect 2s",
        "    timeout client 240s",
        f"    timeout server {SERVER_TIMEOUT_SECONDS}s",
        "    timeout http-request 10s",
        # longer than clients keep idle connections (aiohttp: 15 s), so the balancer never closes one a client
        # is about to reuse (a request on it would fail with no answer at all; seen in the fleet run with 10 s)
        "    timeout http-keep-alive 60s",
        "    timeout queue 30s",
        "    timeout check 2s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        *(f"    errorfile {status} {error_file}" for status in (502, 503, 504)),
        "",
        "frontend api",
        f"    bind {HOST}:{port}",
        "    maxconn 8000",
        "    default_backend instances",
        "",
        "backend instances",
        "    balance roundrobin",
        "    option httpchk",
        "    http-check send meth GET uri /api/health",
        "    http-check expect status 200",
        f"    http-response set-header {INSTANCE_HEADER} %[srv_name]",
        "    default-server check inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 "
        "observe layer4 error-limit 1 on-error mark-down",
        *(f"    server {name} {HOST}:{server_port}" for name, server_port in servers),
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ServerState:
    """One backend server as HAProxy sees it (from ``show stat``)."""

    name: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, ...
    sessions: int  # stot: requests (sessions) sent to it so far
    connection_errors: int  # econ
    retries: int  # wretr
    redispatches: int  # wredis
    http_5xx: int

    @property
    def up(self) -> bool:
        return self.status == "UP"


class LoadBalancer:
    """One haproxy process (foreground, ``-db``) with a generated config in ``workdir``."""

    def __init__(self, workdir: Path, port: int, servers: list[tuple[str, int]]) -> None:
        self.workdir = workdir
        self.port = port
        self.servers = servers
        self.config_path = workdir / "haproxy.cfg"
        self.socket_path = workdir / "haproxy.sock"
        self.log_path = workdir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        binary = find_haproxy()
        self.workdir.mkdir(parents=True, exist_ok=True)
        error_file = self.workdir / "503.http"
        error_file.write_bytes(error_response())
        self.config_path.write_text(render_config(self.port, self.servers, self.socket_path, error_file), encoding="utf-8")
        check = subprocess.run([binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its generated config:\n{check.stdout}{check.stderr}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with code {self.process.returncode}: {self.log_text()[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
                if self.socket_path.exists():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not listen on {HOST}:{self.port} within {timeout:.0f} s")

    def command(self, line: str) -> str:
        """One runtime API command (e.g. ``show stat``) over the admin socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(self.socket_path))
            client.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, ServerState]:
        text = self.command("show stat").lstrip("# ")
        states = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") != "instances" or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            states[row["svname"]] = ServerState(
                name=row["svname"],
                status=row["status"],
                sessions=int(row["stot"] or 0),
                connection_errors=int(row["econ"] or 0),
                retries=int(row["wretr"] or 0),
                redispatches=int(row["wredis"] or 0),
                http_5xx=int(row.get("hrsp_5xx") or 0),
            )
        return states

    def wait_for(self, name: str, up: bool, timeout: float = 15.0) -> float:
        """Seconds until server ``name`` is UP (or DOWN); raises on timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            state = self.server_states().get(name)
            if state is not None and (state.up if up else state.status.startswith(("DOWN", "MAINT"))):
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"haproxy did not see {name} {'UP' if up else 'DOWN'} within {timeout:.0f} s: {self.server_states()}")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
