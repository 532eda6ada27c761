"""The /_emulator control endpoints: introspection, faults, limits, reset. No auth; loopback only; not ACS behaviour."""

from __future__ import annotations

import math

from aiohttp import web

from emulator.errors import AcsError
from emulator.faults import Faults
from emulator.service import Emulator
from emulator.validation import parse_json


async def validate(request: web.Request) -> web.Response:
    try:
        payload = parse_json(await request.read())
    except AcsError as error:
        return error.response()
    return web.json_response(request.app["emulator"].validate(str(payload.get("token", ""))))


async def faults(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    if request.method == "PUT":
        try:
            emulator.faults.update(parse_json(await request.read()))
        except AcsError as error:
            return error.response()
        except ValueError as error:
            return AcsError(400, "InvalidFaults", str(error)).response()
    return web.json_response(emulator.faults.as_dict())


async def limits(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    if request.method == "PUT":
        try:
            changes = parse_json(await request.read())
        except AcsError as error:
            return error.response()
        for operation, spec in changes.items():
            count = spec.get("count") if isinstance(spec, dict) else None
            window = spec.get("windowSeconds") if isinstance(spec, dict) else None
            if (
                operation not in emulator.limits.limits
                or isinstance(count, bool)
                or not isinstance(count, int)
                or count < 0
                or (window is not None and (isinstance(window, bool) or not isinstance(window, int | float) or window <= 0))
            ):
                known = ", ".join(emulator.limits.limits)
                return AcsError(
                    400,
                    "InvalidLimits",
                    f'bad limit for {operation!r}: use {{"count": N, "windowSeconds"?: S}} for one of {known}',
                ).response()
        for operation, spec in changes.items():
            emulator.limits.set(operation, spec["count"], spec.get("windowSeconds"))
        emulator.limits.reset()
    return web.json_response(emulator.limits.describe())


async def stats(request: web.Request) -> web.Response:
    emulator: Emulator = request.app["emulator"]
    return web.json_response(
        {
            "resource": emulator.resource_name,
            "resourceId": emulator.resource_id,
            "operations": dict(emulator.operations),
            "statuses": dict(emulator.statuses),
            "identities": emulator.state.count(),
        }
    )


async def reset(request: web.Request) -> web.Response:
    """Clear counters, call logs, peaks, faults and rate-limit windows; identities too with ?state=true or {"state": true}."""
    emulator: Emulator = request.app["emulator"]
    try:
        payload = parse_json(await request.read())
    except AcsError as error:
        return error.response()
    emulator.reset_observations()
    emulator.faults = Faults()
    emulator.limits.reset()
    if request.query.get("state") == "true" or payload.get("state") is True:
        emulator.state.clear()
        emulator.tokens.clear()
    return web.Response(status=204)


async def identity(request: web.Request) -> web.Response:
    """One identity as this resource saw it: calls per operation and when, and which of its tokens still live.

    ``?before=<epoch seconds>`` adds ``liveTokensIssuedBefore``: 0 proves every token issued before then is dead.
    """
    emulator: Emulator = request.app["emulator"]
    before_text = request.query.get("before")
    before = None
    if before_text is not None:
        try:
            before = float(before_text)
        except ValueError:
            before = math.nan
        if not math.isfinite(before):
            return AcsError(400, "InvalidBefore", "before must be a time in seconds since the epoch.").response()
    return web.json_response(emulator.describe_identity(request.match_info["identity_id"], before))


async def identities(request: web.Request) -> web.Response:
    """Every identity that received a call since the last reset, with its call count per operation."""
    emulator: Emulator = request.app["emulator"]
    return web.json_response({"identities": emulator.calls.summary()})


async def peaks(request: web.Request) -> web.Response:
    """Per operation, the most successful calls in any sliding 30-second window since the last reset."""
    emulator: Emulator = request.app["emulator"]
    return web.json_response(emulator.peaks.describe())


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/_emulator/validate", validate)
    app.router.add_route("GET", "/_emulator/faults", faults)
    app.router.add_route("PUT", "/_emulator/faults", faults)
    app.router.add_route("GET", "/_emulator/limits", limits)
    app.router.add_route("PUT", "/_emulator/limits", limits)
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/identities", identities)
    app.router.add_get("/_emulator/identities/{identity_id}", identity)
    app.router.add_get("/_emulator/peaks", peaks)
