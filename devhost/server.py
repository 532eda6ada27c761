"""Serve the function table over HTTP with aiohttp, on one long-lived event loop.

``async def`` functions run on that loop, as in the Python worker; plain ``def``
functions run in a thread pool. Nothing about a request (headers, query, body) is
logged: they can carry keys and tokens.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.routing import FunctionTable, HttpRoute
from devhost.settings import HostSettings

logger = logging.getLogger("devhost")


def _key_ok(request: web.Request, *accepted: str | None) -> bool:
    given = request.headers.get("x-functions-key") or request.query.get("code") or ""
    return any(key is not None and hmac.compare_digest(given, key) for key in accepted)


def _authorized(request: web.Request, level: str, settings: HostSettings) -> bool:
    if level == "anonymous":
        return True
    if level == "admin":
        return settings.master_key is None or _key_ok(request, settings.master_key)
    if settings.function_key is None and settings.master_key is None:
        return True  # like Core Tools: keys are not enforced locally unless configured
    return _key_ok(request, settings.function_key, settings.master_key)


async def _call(function: Any, kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(**kwargs)
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(**kwargs))


def _to_aiohttp(response: Any) -> web.Response:
    if response is None:
        return web.Response(status=204)
    if not isinstance(response, func.HttpResponse):
        return web.Response(text=str(response))
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    content_type = response.headers.get("Content-Type") or (
        f"{response.mimetype}; charset={response.charset}" if response.mimetype else None
    )
    if content_type and response.status_code != 204:
        headers["Content-Type"] = content_type
    body = response.get_body() if response.status_code != 204 else b""
    return web.Response(status=response.status_code, body=body, headers=headers)


class DevHost:
    def __init__(self, table: FunctionTable, settings: HostSettings) -> None:
        self.table = table
        self.settings = settings
        prefix = settings.route_prefix
        self.prefix = f"/{prefix}" if prefix else ""

    # ----------------------------------------------------------------- CORS

    def _allowed_origin(self, origin: str | None) -> str | None:
        if not origin or not self.settings.cors_origins:
            return None
        if "*" in self.settings.cors_origins:
            return origin if self.settings.cors_credentials else "*"
        return origin if origin.rstrip("/") in self.settings.cors_origins else None

    def _add_cors(self, request: web.Request, response: web.StreamResponse) -> None:
        allowed = self._allowed_origin(request.headers.get("Origin"))
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Vary"] = "Origin"
            if self.settings.cors_credentials:
                response.headers["Access-Control-Allow-Credentials"] = "true"

    def _preflight(self, request: web.Request) -> web.Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = web.Response(status=204)
        if self._allowed_origin(request.headers.get("Origin")):
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                response.headers["Access-Control-Allow-Headers"] = requested
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    # ----------------------------------------------------------------- dispatch

    def _find(self, path: str) -> tuple[list[tuple[HttpRoute, dict[str, str]]], bool]:
        if self.prefix:
            if not (path.lower() == self.prefix.lower() or path.lower().startswith(self.prefix.lower() + "/")):
                return [], False
            path = path[len(self.prefix):]
        matches = [(route, params) for route in self.table.http_routes if (params := route.match(path)) is not None]
        return matches, True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        response = await self._dispatch(request)
        self._add_cors(request, response)
        logger.info("%s %s %d %.1fms", request.method, request.path, response.status, (time.perf_counter() - started) * 1000)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/admin/functions/") and request.method == "POST":
            return await self._run_other(request, request.path.rsplit("/", 1)[-1])
        preflight = self._preflight(request)
        if preflight is not None:
            return preflight
        matches, _ = self._find(request.path)
        if not matches:
            return web.Response(status=404)
        for route, params in matches:
            if route.methods is None or request.method in route.methods:
                return await self._run_http(request, route, params)
        allowed = sorted({m for route, _ in matches for m in (route.methods or ())})
        return web.Response(status=405, headers={"Allow": ", ".join(allowed)})

    async def _run_http(self, request: web.Request, route: HttpRoute, params: dict[str, str]) -> web.StreamResponse:
        if not _authorized(request, route.auth_level, self.settings):
            return web.Response(status=401)
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=params,
            body=await request.read(),
        )
        try:
            result = await _call(route.function, {route.param_name: http_request})
        except Exception:  # noqa: BLE001 - like the host: log it, answer 500 without details
            logger.exception("function %s raised", route.name)
            return web.Response(status=500)
        return _to_aiohttp(result)

    async def _run_other(self, request: web.Request, name: str) -> web.Response:
        if not _authorized(request, "admin", self.settings):
            return web.Response(status=401)
        other = self.table.others.get(name)
        if other is None:
            return web.Response(status=404)
        if other.trigger_type == "TimerTrigger":
            from azure.functions.timer import TimerRequest

            argument: Any = TimerRequest(past_due=False)
        else:
            body = await request.json() if request.can_read_body else {}
            argument = (body or {}).get("input")
        try:
            await _call(other.function, {other.param_name: argument})
        except Exception:  # noqa: BLE001
            logger.exception("function %s raised", name)
            return web.Response(status=500)
        return web.Response(status=202)


def create_web_app(table: FunctionTable, settings: HostSettings) -> web.Application:
    host = DevHost(table, settings)
    web_app = web.Application(client_max_size=100 * 1024 * 1024)  # the Functions host's body limit
    web_app.router.add_route("*", "/{tail:.*}", host.handle)
    return web_app
