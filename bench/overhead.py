"""Request overhead: what one warm token request costs through the function vs the raw SDK call.

One caller at a time (latency, not throughput). Paths, interleaved in rounds so drift on a shared
machine hits all of them alike:

- raw async SDK ``get_token`` on the worker's own client (baseline: one ACS call);
- raw SDK ``get_token`` and the identity-map write side by side (what a warm issue must do);
- ``issue_token`` / ``refresh_token`` in process (``func.HttpRequest`` into the function);
- ``POST /api/token`` / ``/api/token/refresh`` over HTTP through devhost.

It also counts, per warm request, the ACS calls (the emulator's ``/_emulator/stats``) and the
identity-map round trips (the store's methods counted, as tests/integration/test_token_service_costs.py does).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import aiohttp

from bench.common import BenchContext, InProcessApp, Sample, interleaved, ratio, start_devhost, use_app_env
from bench.report import Table, verdict

BODY = {"scopes": ["voip"], "expiresInMinutes": 60}
TARGET_IN_PROCESS = 1.10  # p50 at most 10 % over the raw SDK call
STORE_METHODS = ("get", "insert", "record_issued", "record_revoked", "delete")


def count_store_calls(store: Any) -> Counter:
    """Wrap the worker's store instance so each round-trip method counts its calls."""
    calls: Counter = Counter()
    for name in STORE_METHODS:
        original = getattr(store, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)

        setattr(store, name, counted)
    return calls


def acs_ops(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    ops_before, ops_after = before["operations"], after["operations"]
    return {op: n - ops_before.get(op, 0) for op, n in ops_after.items() if n - ops_before.get(op, 0)}


async def _in_process(ctx: BenchContext, per_round: int, rounds: int) -> tuple[dict[str, Sample], dict[str, float]]:
    from azure.communication.identity import CommunicationUserIdentifier

    from shared.adapters.acs import create_client

    app = InProcessApp()
    # The raw baseline: the SDK client built by the same factory, with the same options, as the app's.
    client, _ = create_client(app.services.acs_settings, app.services.env)
    store = app.services.identities()
    await app.issue("overhead-user", BODY)  # cold: creates the identity, table, connections
    acs_id = CommunicationUserIdentifier((await client.create_user()).properties["id"])
    user_key = '["dev","overhead-user"]'
    expiry = timedelta(minutes=60)

    async def raw(_: int) -> None:
        await client.get_token(acs_id, ["voip"], token_expires_in=expiry)

    async def raw_and_write(_: int) -> None:
        await asyncio.gather(client.get_token(acs_id, ["voip"], token_expires_in=expiry), store.record_issued(user_key, _now()))

    async def issue(_: int) -> None:
        await app.issue("overhead-user", BODY)

    async def refresh(_: int) -> None:
        await app.refresh("overhead-user", BODY)

    paths = {"raw": raw, "raw+write": raw_and_write, "issue": issue, "refresh": refresh}
    samples = await interleaved(paths, per_round, rounds)

    # costs of a warm request: ACS operations and store round trips, counted
    calls = count_store_calls(store)
    n = max(50, per_round)
    before = ctx.emulator_stats()
    for _ in range(n):
        await app.issue("overhead-user", BODY)
    issue_acs = acs_ops(before, ctx.emulator_stats())
    issue_store = dict(calls)
    calls.clear()
    before = ctx.emulator_stats()
    for _ in range(n):
        await app.refresh("overhead-user", BODY)
    refresh_acs = acs_ops(before, ctx.emulator_stats())
    refresh_store = dict(calls)
    await client.close()
    await app.close()
    costs: dict[str, Any] = {
        "issue_acs": sum(issue_acs.values()) / n,
        "issue_store": sum(issue_store.values()) / n,
        "refresh_acs": sum(refresh_acs.values()) / n,
        "refresh_store": sum(refresh_store.values()) / n,
        "issue_detail": f"ACS {issue_acs}, store {issue_store}",
        "refresh_detail": f"ACS {refresh_acs}, store {refresh_store}",
    }
    return samples, costs


def _now():
    from shared.domain.clock import utc_now

    return utc_now()


async def _over_http(url: str, per_round: int, rounds: int) -> dict[str, Sample]:
    async with aiohttp.ClientSession() as session:

        def call(path: str):
            async def one(_: int) -> None:
                headers = {"X-Dev-User": "overhead-http-user", "Content-Type": "application/json"}
                async with session.post(f"{url}/api/{path}", json=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"POST /api/{path} answered {response.status}")

            return one

        paths = {"http issue": call("token"), "http refresh": call("token/refresh")}
        return await interleaved(paths, per_round, rounds)


def run(ctx: BenchContext) -> list[Table]:
    rounds = 4
    per_round = ctx.scaled(300, 40)
    env = ctx.app_env()
    use_app_env(env)
    samples, costs = asyncio.run(_in_process(ctx, per_round, rounds))
    app = start_devhost(ctx.app_env())
    try:
        samples.update(asyncio.run(_over_http(app.url, per_round, rounds)))
    finally:
        app.stop()

    raw = samples["raw"]
    table = Table(
        f"Request overhead, one caller, warm user ({rounds * per_round} requests per path, interleaved)",
        ["path", "p50 ms", "p99 ms", "p50 vs raw SDK", "p99 vs raw SDK", "ACS calls/req", "store round trips/req"],
    )
    labels = {
        "raw": "raw async SDK get_token (baseline)",
        "raw+write": "raw SDK get_token ‖ Table write (the floor of a warm issue)",
        "issue": "issue_token in process (func.HttpRequest)",
        "refresh": "refresh_token in process",
        "http issue": "POST /api/token over HTTP (devhost)",
        "http refresh": "POST /api/token/refresh over HTTP (devhost)",
    }
    for name, label in labels.items():
        sample = samples[name]
        acs = store = "-"
        if name in ("raw", "raw+write"):
            acs, store = "1", ("0" if name == "raw" else "1")
        elif "issue" in name:
            acs, store = f"{costs['issue_acs']:.2f}", f"{costs['issue_store']:.2f}"
        elif "refresh" in name:
            acs, store = f"{costs['refresh_acs']:.2f}", f"{costs['refresh_store']:.2f}"
        table.add(label, sample.p50, sample.p99, ratio(sample.p50, raw.p50), ratio(sample.p99, raw.p99), acs, store)

    issue_ratio = samples["issue"].p50 / raw.p50
    refresh_ratio = samples["refresh"].p50 / raw.p50
    floor_ratio = samples["raw+write"].p50 / raw.p50
    issue_over_floor = samples["issue"].p50 / samples["raw+write"].p50
    refresh_over_floor = samples["refresh"].p50 / samples["raw+write"].p50
    refresh_verdict = verdict(refresh_ratio <= TARGET_IN_PROCESS, f"+{(refresh_ratio - 1) * 100:.0f} % vs target +10 %")
    table.notes += [
        f"Target in-process p50 ≤ {TARGET_IN_PROCESS:.2f}x raw SDK: issue {issue_ratio:.2f}x "
        f"{verdict(issue_ratio <= TARGET_IN_PROCESS, f'+{(issue_ratio - 1) * 100:.0f} % vs target +10 %')}, "
        f"refresh {refresh_ratio:.2f}x {refresh_verdict}.",
        f"A warm request makes one Table write (LastIssuedAt) beside the ACS call; that write alone puts the floor at "
        f"{floor_ratio:.2f}x the raw SDK here (Azurite is one Node.js process on the same two cores). "
        f"Against that floor the function (auth, JSON, policy, cache, wrapper) adds "
        f"{issue_over_floor:.2f}x (issue) and {refresh_over_floor:.2f}x "
        f"(refresh): {verdict(max(issue_over_floor, refresh_over_floor) <= TARGET_IN_PROCESS)} "
        f"for ≤ 10 % over the floor.",
        f"Counted over the cost run: issue {costs['issue_detail']}; refresh {costs['refresh_detail']}.",
    ]
    return [table]
