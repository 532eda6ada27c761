"""``make bench``: what the service adds on top of a raw ACS SDK call, measured in one run.

Against the local emulator and Azurite (loopback), it times, for the same number of token
requests at the same concurrency:

1. baseline: the raw async SDK ``get_token`` for one existing identity (one ACS call),
   and the sync SDK on a thread pool (how sync functions would run in the Python worker);
2. service: ``TokenService.issue`` for a warm user (ACS call + identity-map write), in process;
3. HTTP: ``POST /api/token`` through devhost for warm users (adds auth, JSON, the host hop).

and prints requests per second and latency percentiles for each. Bounded in count; loopback only.
Usage: python -m bench [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


async def measure(name: str, total: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "name": name,
        "rps": total / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "max": latencies[-1] * 1000,
    }


def report(rows: list[dict[str, float]]) -> None:
    baseline = rows[0]["p50"]
    print(f"\n{'path':<44}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p50 vs SDK':>12}")
    for row in rows:
        print(
            f"{row['name']:<44}{row['rps']:>9.0f}{row['p50']:>9.2f}{row['p95']:>9.2f}{row['max']:>9.2f}"
            f"{row['p50'] / baseline:>11.2f}x"
        )


async def measure_sync_sdk(emulator, user, total: int, concurrency: int) -> dict[str, float]:
    from concurrent.futures import ThreadPoolExecutor

    from azure.communication.identity import CommunicationIdentityClient as SyncClient

    sync_client = SyncClient.from_connection_string(emulator.connection_string, connection_verify=str(emulator.cert_path))
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            await loop.run_in_executor(pool, lambda: sync_client.get_token(user, ["voip"]))
        return await measure(
            "sync SDK get_token on a thread pool",
            total,
            concurrency,
            lambda i: loop.run_in_executor(pool, lambda: sync_client.get_token(user, ["voip"])),
        )


async def run(total: int, concurrency: int, emulator, azurite) -> list[dict[str, float]]:
    from shared import acs, settings
    from shared.api import close_token_service, get_token_service
    from shared.auth import Caller
    from shared.policy import TokenRequest

    settings.clear_cache()
    service = acs.get_acs_service()
    rows = []

    # 1. raw SDK: the same client the service uses, one get_token per request
    client = service._client  # noqa: SLF001 - the baseline is the raw SDK call on the same client
    from azure.communication.identity import CommunicationUserIdentifier

    user = CommunicationUserIdentifier(await service.create_identity())
    for _ in range(20):  # warm the connection pool
        await client.get_token(user, ["voip"])
    rows.append(await measure("raw SDK get_token (baseline)", total, concurrency, lambda i: client.get_token(user, ["voip"])))

    # 1b. the sync SDK on a thread pool: what sync functions would do in the Python worker
    rows.append(await measure_sync_sdk(emulator, user, total, concurrency))

    # 2. the service layer, warm users (ACS id cached in the worker; one Table write)
    tokens = get_token_service()
    request = TokenRequest(scopes=("voip",), expires_in_minutes=60)
    callers = [Caller(provider="bench", user_id=f"user-{n}", roles=frozenset()) for n in range(concurrency)]
    for caller in callers:
        await tokens.issue(caller, request)
    rows.append(
        await measure("TokenService.issue, warm user", total, concurrency, lambda i: tokens.issue(callers[i % concurrency], request))
    )
    await close_token_service()
    return rows


async def run_http(url: str, total: int, concurrency: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            headers = {"X-Dev-User": f"http-user-{i % concurrency}", "Content-Type": "application/json"}
            async with session.post(f"{url}/api/token", data=b'{"scopes":["voip"]}', headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"POST /api/token answered {response.status}")

        for i in range(concurrency):
            await one(i)
        return await measure("POST /api/token over HTTP (devhost), warm", total, concurrency, one)


def start_app(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("DEVHOST_URL="):
            return process, line.strip().split("=", 1)[1]
    raise RuntimeError("devhost did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from localdev.azurite import start_azurite
    from localdev.emulator_process import start_emulator

    with tempfile.TemporaryDirectory(prefix="acs-bench-") as tmp:
        with start_azurite(location=Path(tmp) / "azurite") as azurite, start_emulator(
            "--limit-issue", "1000000", "--limit-create", "1000000", cert_dir=Path(tmp)
        ) as emulator:
            env = {
                **os.environ,
                "ACS_CONNECTION_STRING": emulator.connection_string,
                "ACS_CA_BUNDLE": str(emulator.cert_path),
                "AzureWebJobsStorage": azurite.connection_string,
                "AUTH_MODE": "dev",
                "TOKEN_RATE_LIMIT_PER_MINUTE": "0",
                "IDENTITY_TABLE_NAME": "benchidentities",
            }
            os.environ.update(env)
            rows = asyncio.run(run(args.requests, args.concurrency, emulator, azurite))
            app, url = start_app({**env, "IDENTITY_TABLE_NAME": "benchhttpidentities"})
            try:
                rows.append(asyncio.run(run_http(url, args.requests, args.concurrency)))
            finally:
                app.terminate()
                app.wait(timeout=10)
    print(f"{args.requests} requests per path, concurrency {args.concurrency}, emulator + Azurite on loopback, {os.cpu_count()} cores")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
