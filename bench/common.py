"""What every benchmark shares: the local stand-ins, timing helpers and in-process function calls.

Every benchmark gets a :class:`BenchContext` (Azurite + the ACS emulator already running, the
app's environment, the scale) and returns :class:`~bench.report.Table` objects, so ``__main__``
can print them and write ``bench/RESULTS.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The emulator's ACS rate limits would throttle a benchmark long before it measures anything.
EMULATOR_NO_LIMITS = (
    "--limit-issue",
    "10000000",
    "--limit-create",
    "10000000",
    "--limit-revoke",
    "10000000",
    "--limit-delete",
    "10000000",
)


@dataclass
class BenchContext:
    """The running stand-ins and how big to make each run (``quick`` scales counts down)."""

    azurite: Any
    emulator: Any
    quick: bool
    env: dict[str, str] = field(default_factory=dict)

    def scaled(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def app_env(self, **overrides: str) -> dict[str, str]:
        """The app's settings for one benchmark: its own identity table, no per-user rate limit."""
        return {**self.env, "IDENTITY_TABLE_NAME": "bench" + uuid.uuid4().hex[:12], **overrides}

    def emulator_stats(self) -> dict[str, Any]:
        return self.emulator.stats()


def base_env(azurite: Any, emulator: Any) -> dict[str, str]:
    """App settings pointing at the stand-ins (dev auth: the bench measures the service, not an IdP)."""
    return {
        "ACS_CONNECTION_STRING": emulator.connection_string,
        "ACS_CA_BUNDLE": str(emulator.cert_path),
        "AzureWebJobsStorage": azurite.connection_string,
        "AUTH_MODE": "dev",
        "TOKEN_RATE_LIMIT_PER_MINUTE": "0",
        "TOKEN_ALLOWED_SCOPES": "chat,voip",
    }


# --------------------------------------------------------------------------- timing


@dataclass
class Sample:
    """Latencies (seconds) of one measured path and the wall time of the whole run."""

    latencies: list[float]
    elapsed: float

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        """The q-th percentile in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99(self) -> float:
        return self.pct(99)


async def measure(total: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> Sample:
    """Run ``one(i)`` for i in range(total) from ``concurrency`` callers; time each call and the whole."""
    latencies: list[float] = []
    queue = iter(range(total))

    async def caller() -> None:
        for i in queue:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return Sample(latencies, time.perf_counter() - started)


One = Callable[[int], Awaitable[Any]]


async def interleaved(
    paths: Mapping[str, One],
    per_round: int,
    rounds: int,
    one_round: Callable[[str, One], Awaitable[Sample]] | None = None,
) -> dict[str, Sample]:
    """Warm every path, then measure them in turn, one caller, round after round, so drift hits all alike.

    ``one_round(name, path)`` measures one round of a path (default: ``per_round`` requests, one caller), for a
    benchmark that reads more around it (bench/latency.py: CPU).
    """

    async def default_round(_: str, one: One) -> Sample:
        return await measure(per_round, 1, one)

    one_round = one_round or default_round
    for one in paths.values():
        for i in range(20):
            await one(i)
    samples = {name: Sample([], 0.0) for name in paths}
    for _ in range(rounds):
        for name, one in paths.items():
            sample = await one_round(name, one)
            samples[name].latencies += sample.latencies
            samples[name].elapsed += sample.elapsed
    return samples


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "-"


# --------------------------------------------------------------------------- the app in process


class InProcessApp:
    """``function_app``'s user functions, called with ``func.HttpRequest`` as the Python worker does."""

    def __init__(self) -> None:
        from function_app import create_app
        from shared.composition import Services

        #: this app's own composition root (settings from the environment, as in the worker)
        self.services = Services()
        self.functions = {f.get_function_name(): f.get_user_function() for f in create_app(self.services).get_functions()}

    async def close(self) -> None:
        await self.services.close()

    async def call(self, name: str, method: str, path: str, user: str | None, body: Any = None) -> Any:
        import azure.functions as func

        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["X-Dev-User"] = user
        data = b"" if body is None else json.dumps(body).encode()
        request = func.HttpRequest(method, f"http://127.0.0.1/api/{path}", headers=headers, params={}, route_params={}, body=data)
        return await self.functions[name](request)

    async def issue(self, user: str, body: Any = None) -> Any:
        response = await self.call("issue_token", "POST", "token", user, body)
        if response.status_code != 200:
            raise RuntimeError(f"issue_token answered {response.status_code}: {response.get_body()[:200]!r}")
        return response

    async def refresh(self, user: str, body: Any = None) -> Any:
        response = await self.call("refresh_token", "POST", "token/refresh", user, body)
        if response.status_code != 200:
            raise RuntimeError(f"refresh_token answered {response.status_code}: {response.get_body()[:200]!r}")
        return response


def use_app_env(env: dict[str, str]) -> None:
    """Point this process's app settings at ``env`` (before an InProcessApp is built)."""
    os.environ.update(env)


# --------------------------------------------------------------------------- devhost subprocess


@dataclass
class DevhostProcess:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        from localdev.processes import stop_process

        stop_process(self.process)


def start_devhost(env: dict[str, str], python: Path | str = sys.executable, worker: str | None = None) -> DevhostProcess:
    """``python -m devhost --port 0``: the app served over HTTP the way the Functions host would (on ``python``;
    ``worker``: DEVHOST_WORKER, direct or runtime, else devhost's default for that Python)."""
    chosen = {"DEVHOST_WORKER": worker} if worker else {}
    process = subprocess.Popen(
        [str(python), "-m", "devhost", "--host", "127.0.0.1", "--port", "0", "--app-dir", str(ROOT)],
        cwd=ROOT,
        env={**os.environ, **env, "DEVHOST_CORS": "", **chosen},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("DEVHOST_URL="):
            return DevhostProcess(line.strip().split("=", 1)[1], process)
    process.wait()
    raise RuntimeError(f"devhost ({worker or 'default'}) did not start on {python}")


def http_get(url: str, timeout: float = 10.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc (Linux)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, in seconds, from /proc (Linux)."""
    # Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
