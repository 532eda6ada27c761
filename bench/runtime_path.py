"""Python 3.13 against 3.11, and devhost's runtime path against its direct path (part of the cold start benchmark).

Cold start, same run, same machine, each interpreter in its own fresh processes: ``import function_app``
(3.13 imports azure-functions 2.x) and process start to the first answered ``GET /api/health`` (the app
called in process, as :mod:`bench.coldstart` does), then devhost's start to its first answer over HTTP:
on 3.11 (devhost calls the functions), on 3.13 the same way, and on 3.13 through azure-functions-runtime
(devhost starts the worker, which indexes the app; the worker's start is inside the figure).

Per request, on 3.13, one devhost per path: sequential ``GET /api/health`` (no ACS, no storage: the path's
own cost), sequential warm ``POST /api/token`` (one ACS call and one Table write on top), and ``/api/health``
from 16 concurrent clients. The runtime path adds two pipe crossings and the protobuf conversions per call.

The 3.13 interpreter is ``.venv313`` (``make setup313``; ``make bench`` prepares it when Python 3.13 is found);
without it the 3.13 rows say so.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import ROOT, BenchContext, start_devhost
from bench.report import Table

VENV313_PYTHON = ROOT / ".venv313" / "bin" / "python"


def python313() -> Path | None:
    return VENV313_PYTHON if VENV313_PYTHON.exists() else None


def version_of(python: Path | str) -> str:
    result = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, timeout=30
    )
    return result.stdout.strip()


def child_coldstart(python: Path | str, env: dict[str, str], repeats: int) -> dict[str, float]:
    """Medians of bench.coldstart's child on ``python``: import_ms and process start to the first health answer."""
    from bench.coldstart import CHILD

    subprocess.run([str(python), "-c", "import function_app"], cwd=ROOT, env=env, capture_output=True, timeout=120)  # .pyc once
    imports, to_health = [], []
    for _ in range(repeats):
        started = time.time()
        result = subprocess.run([str(python), "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        line = next((out for out in result.stdout.splitlines() if out.startswith("COLDSTART=")), None)
        if line is None:
            raise RuntimeError(f"cold start child on {python} failed:\n{result.stderr[-2000:]}")
        data = json.loads(line.split("=", 1)[1])
        if data["health_status"] != 200:
            raise RuntimeError(f"cold start child on {python}: health answered {data['health_status']}")
        imports.append(data["import_ms"])
        to_health.append((data["health_answered_wall"] - started) * 1000)
    return {"import_ms": statistics.median(imports), "to_health_ms": statistics.median(to_health)}


def devhost_first_answer_ms(python: Path | str, env: dict[str, str], worker: str, repeats: int) -> float:
    figures = []
    for _ in range(repeats):
        started = time.perf_counter()
        host = start_devhost(env, python, worker)
        try:
            if requests.get(f"{host.url}/api/health", timeout=30).status_code != 200:
                raise RuntimeError(f"devhost ({worker}) health was not 200")
            figures.append((time.perf_counter() - started) * 1000)
        finally:
            host.stop()
    return statistics.median(figures)


def latencies_ms(session: requests.Session, method: str, url: str, count: int, **options: object) -> list[float]:
    figures = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.request(method, url, timeout=30, **options)  # type: ignore[arg-type]  # requests' kwargs
        figures.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {url} answered {response.status_code}")
    return figures


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def concurrent_rate(url: str, clients: int, per_client: int) -> float:
    """Requests per second of ``clients`` threads, each with its own keep-alive session."""

    def client() -> None:
        with requests.Session() as session:
            for _ in range(per_client):
                if session.get(url, timeout=30).status_code != 200:
                    raise RuntimeError(f"GET {url} failed under load")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return clients * per_client / (time.perf_counter() - started)


def per_request(ctx: BenchContext, python: Path) -> Table:
    count = ctx.scaled(400, 60)
    table = Table(
        f"Per request on Python {version_of(python)}: devhost's runtime path vs its direct path (same run)",
        ["measure", "runtime path (azure-functions-runtime)", "direct path (devhost calls the function)", "runtime / direct"],
    )
    hosts = {worker: start_devhost(ctx.app_env(), python, worker) for worker in ("runtime", "direct")}
    try:
        figures: dict[str, dict[str, float]] = {}
        for worker, host in hosts.items():
            with requests.Session() as session:
                user = {"X-Dev-User": f"bench-path-{uuid.uuid4().hex[:8]}"}
                latencies_ms(session, "GET", f"{host.url}/api/health", 20)  # warm both ends
                latencies_ms(session, "POST", f"{host.url}/api/token", 3, headers=user, json={"scopes": ["voip"]})
                health = latencies_ms(session, "GET", f"{host.url}/api/health", count)
                token = latencies_ms(
                    session, "POST", f"{host.url}/api/token", count // 4, headers=user, json={"scopes": ["voip"]}
                )
            figures[worker] = {
                "health p50": statistics.median(health),
                "health p95": percentile(health, 0.95),
                "token p50": statistics.median(token),
                "token p95": percentile(token, 0.95),
                "health req/s, 16 clients": concurrent_rate(f"{host.url}/api/health", 16, ctx.scaled(100, 15)),
            }
    finally:
        for host in hosts.values():
            host.stop()
    for measure, label in (
        ("health p50", "GET /api/health, sequential, p50 ms"),
        ("health p95", "GET /api/health, sequential, p95 ms"),
        ("token p50", "warm POST /api/token (1 ACS call + 1 Table write), p50 ms"),
        ("token p95", "warm POST /api/token, p95 ms"),
        ("health req/s, 16 clients", "GET /api/health, 16 concurrent clients, req/s"),
    ):
        runtime, direct = figures["runtime"][measure], figures["direct"][measure]
        table.add(label, runtime, direct, f"{runtime / direct:.2f}x")
    health_extra = figures["runtime"]["health p50"] - figures["direct"]["health p50"]
    table.notes.append(
        f"What the runtime path adds per request: {health_extra:.2f} ms at p50 on /api/health (the host-worker messages over "
        f"pipes, protobuf in and out, the runtime's binding conversion), {count} sequential requests over one keep-alive "
        f"connection each; the same Azurite and emulator behind both."
    )
    table.notes.append(
        "The worker sends every log record of an invocation to the host, as the platform's worker does, and host.json "
        "categories filter the host's 'Function.<name>.User', not Python logger names; the app itself keeps the Azure "
        "SDKs' loggers at WARNING (shared/adapters/telemetry.py, quiet_sdk_logs), so both paths write the same lines."
    )
    return table


def run(ctx: BenchContext) -> list[Table]:
    repeats = ctx.scaled(5, 2)
    env = {**os.environ, **ctx.app_env(), "PYTHONDONTWRITEBYTECODE": "0"}
    python = python313()
    current = version_of(sys.executable)
    cold = Table(
        f"Cold start, Python 3.13 vs {current} (median of {repeats}, same run)",
        ["step", f"Python {current} ms", "Python 3.13 ms", "3.13 / older"],
    )
    older = child_coldstart(sys.executable, env, repeats)
    if python is None:
        cold.add("import function_app", older["import_ms"], "not measured: no .venv313 (make setup313)", "-")
        cold.notes.append("Python 3.13 was not found when this ran: make setup313 (needs a python3.13) and run make bench again.")
        return [cold]
    newer = child_coldstart(python, env, repeats)
    cold.add("import function_app", older["import_ms"], newer["import_ms"], f"{newer['import_ms'] / older['import_ms']:.2f}x")
    cold.add(
        "process start → first answer (health, in process)",
        older["to_health_ms"],
        newer["to_health_ms"],
        f"{newer['to_health_ms'] / older['to_health_ms']:.2f}x",
    )
    devhost_old = devhost_first_answer_ms(sys.executable, ctx.app_env(), "direct", repeats)
    devhost_direct = devhost_first_answer_ms(python, ctx.app_env(), "direct", repeats)
    devhost_runtime = devhost_first_answer_ms(python, ctx.app_env(), "runtime", repeats)
    cold.add(
        "devhost start → first GET /api/health over HTTP (functions called by devhost)",
        devhost_old,
        devhost_direct,
        f"{devhost_direct / devhost_old:.2f}x",
    )
    cold.add(
        "devhost start → first GET /api/health over HTTP, 3.13 through azure-functions-runtime (worker start included)",
        "-",
        devhost_runtime,
        f"{devhost_runtime / devhost_direct:.2f}x of 3.13 direct",
    )
    cold.notes.append(
        "Microsoft states that 3.13 starts faster than 3.11 in Azure (Microsoft Learn, 'Changes and guidance for Python 3.13+ "
        "in Azure Functions'); these rows are this app's own start on this machine, not the platform's."
    )
    return [cold, per_request(ctx, python)]
