"""Serve the app's functions over HTTP with aiohttp, on one long-lived event loop.

``async def`` functions run on that loop, as in the Python worker; plain ``def``
functions run in the loop's thread pool. Nothing about a request (headers, query,
body) is logged: they can carry keys and tokens. The access log is one line per
request: method, path without query string, status, milliseconds.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any, Callable

import azure.functions as func
from aiohttp import web

from devhost.routing import FunctionTable, HttpRoute, build_routes, function_table, routes_for
from devhost.settings import HostSettings

logger = logging.getLogger("devhost")
MAX_BODY = 100 * 1024 * 1024  # the Functions host's request body limit
ADMIN_PREFIX = "/admin/functions/"


# --------------------------------------------------------------------------- keys


def _given_key(request: web.Request) -> str:
    return request.headers.get("x-functions-key") or request.query.get("code") or ""


def authorized(request: web.Request, level: str, settings: HostSettings) -> bool:
    """anonymous: open; function: function or master key; admin: master key. Unconfigured levels are open."""
    if level == "admin":
        required, accepted = settings.master_key, (settings.master_key,)
    elif level == "function":
        required, accepted = settings.function_key, (settings.function_key, settings.master_key)
    else:
        return True
    if not required:
        return True  # like Core Tools locally: not enforced unless a key is configured
    given = _given_key(request).encode()
    return any(key and hmac.compare_digest(given, key.encode()) for key in accepted)


# --------------------------------------------------------------------------- calling functions


def _arguments(function: Callable[..., Any], name: str, trigger_param: str, value: Any) -> dict[str, Any]:
    """The trigger value under its parameter name; a simple context for ``context``; None for the rest."""
    kwargs: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name == trigger_param:
            kwargs[parameter.name] = value
        elif parameter.name == "context":
            kwargs["context"] = SimpleNamespace(
                invocation_id=str(uuid.uuid4()), function_name=name, function_directory="",
                trace_context=None, retry_context=None, thread_local_storage=threading.local(),
            )
        elif parameter.default is parameter.empty:
            kwargs[parameter.name] = None  # an output binding or the like: not emulated
    return kwargs


async def call_function(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Await ``async def`` on this loop; run plain ``def`` in the thread pool."""
    if inspect.iscoroutinefunction(function):
        return await function(**kwargs)
    result = await asyncio.get_running_loop().run_in_executor(None, lambda: function(**kwargs))
    return await result if inspect.isawaitable(result) else result


def to_aiohttp(result: Any) -> web.Response:
    """A func.HttpResponse (or str) as the worker encodes it: status, headers, Content-Type, body."""
    if isinstance(result, str):
        return web.Response(status=200, body=result.encode(), content_type="text/plain", charset="utf-8")
    if result is None:
        return web.Response(status=204)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse")
    response = web.Response(status=result.status_code)
    for name, value in result.headers.items():  # repeated headers (Set-Cookie) stay repeated
        response.headers.add(name, value)
    if "Content-Type" not in response.headers:
        mimetype = result.mimetype
        response.headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    if result.status_code not in (204, 304):
        response.body = result.get_body() or b""
    return response


def _joined(pairs: Any, separator: str, lower: bool = False) -> dict[str, str]:
    """A multi-dict as a plain dict, repeated keys joined (as the host does)."""
    joined: dict[str, str] = {}
    for key, value in pairs.items():
        key = key.lower() if lower else key
        joined[key] = f"{joined[key]}{separator}{value}" if key in joined else value
    return joined


# --------------------------------------------------------------------------- the host


class DevHost:
    """Dispatches every request: CORS preflight, admin API, HTTP routes."""

    def __init__(self, table: FunctionTable, routes: list[HttpRoute], settings: HostSettings) -> None:
        self.table = table
        self.routes = routes
        self.settings = settings
        self.others = {name.lower(): other for name, other in table.others.items()}

    # CORS ------------------------------------------------------------------

    def _allowed_origin(self, origin: str | None) -> str | None:
        origins = self.settings.cors_origins
        if not origin or not origins:
            return None
        if "*" in origins:
            return origin if self.settings.cors_credentials else "*"
        return origin if origin.rstrip("/").lower() in {o.lower() for o in origins} else None

    def _add_cors(self, request: web.Request, response: web.StreamResponse) -> None:
        allowed = self._allowed_origin(request.headers.get("Origin"))
        if not allowed:
            return
        response.headers["Access-Control-Allow-Origin"] = allowed
        vary = response.headers.get("Vary")
        if not vary:
            response.headers["Vary"] = "Origin"
        elif "origin" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Origin"
        if self.settings.cors_credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"

    def _preflight(self, request: web.Request) -> web.Response | None:
        if not self.settings.cors_origins or request.method != "OPTIONS":
            return None
        if "Origin" not in request.headers or "Access-Control-Request-Method" not in request.headers:
            return None
        response = web.Response(status=204)
        if self._allowed_origin(request.headers["Origin"]):  # else: 204 without CORS headers, as ASP.NET Core
            response.headers["Access-Control-Allow-Methods"] = request.headers["Access-Control-Request-Method"]
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                response.headers["Access-Control-Allow-Headers"] = requested
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    # dispatch --------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response: web.StreamResponse = await self._dispatch(request)
        except web.HTTPException as error:  # e.g. 413 from aiohttp when the body is too large
            response = web.Response(status=error.status, headers={k: v for k, v in error.headers.items() if k != "Content-Type"})
        except Exception:  # noqa: BLE001 - never a trace to the client
            logger.exception("devhost failed on %s %s", request.method, request.path)
            response = web.Response(status=500)
        self._add_cors(request, response)
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("%s %s %d %.1fms", request.method, request.path, response.status, elapsed)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        preflight = self._preflight(request)
        if preflight is not None:
            return preflight
        if request.path.lower().startswith(ADMIN_PREFIX) and request.path.count("/") == 3:
            if request.method != "POST":
                return web.Response(status=405, headers={"Allow": "POST"})
            return await self._run_other(request, request.path[len(ADMIN_PREFIX):])
        path = request.rel_url.raw_path
        matches = [(route, params) for route in self.routes if (params := route.match(path)) is not None]
        if not matches:
            return web.Response(status=404)
        for route, params in matches:
            if route.allows(request.method):
                return await self._run_http(request, route, params)
        allowed = sorted({method for route, _ in matches for method in route.methods or ()})
        return web.Response(status=405, headers={"Allow": ", ".join(allowed)})

    async def _run_http(self, request: web.Request, route: HttpRoute, params: dict[str, str]) -> web.StreamResponse:
        if not authorized(request, route.auth_level, self.settings):
            return web.Response(status=401)
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=_joined(request.headers, ", ", lower=True),
            params=_joined(request.query, ","),
            route_params=params,
            body=await request.read(),
        )
        try:
            kwargs = _arguments(route.function, route.name, route.param_name, http_request)
            return to_aiohttp(await call_function(route.function, kwargs))
        except Exception:  # noqa: BLE001 - like the host: log it, answer 500 without details
            logger.exception("function %s raised", route.name)
            return web.Response(status=500)

    async def _run_other(self, request: web.Request, name: str) -> web.Response:
        if not authorized(request, "admin", self.settings):
            return web.Response(status=401)
        other = self.others.get(name.lower())
        if other is None:
            return web.Response(status=404)
        if other.trigger_type == "TimerTrigger":
            from azure.functions.timer import TimerRequest  # TimerRequest(past_due=...) works on 1.x and 2.x

            argument: Any = TimerRequest(past_due=False)
        else:
            raw = await request.read()
            try:
                document = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return web.Response(status=400)
            argument = document.get("input") if isinstance(document, dict) else None
            if other.trigger_type == "QueueTrigger":
                argument = func.QueueMessage(id=str(uuid.uuid4()), body=argument or "")
        try:
            await call_function(other.function, _arguments(other.function, other.name, other.param_name, argument))
        except Exception:  # noqa: BLE001
            logger.exception("function %s raised", other.name)
            return web.Response(status=500)
        return web.Response(status=202)


DEVHOST_KEY = web.AppKey("devhost", DevHost)


def create_web_app(app: Any, settings: HostSettings | None = None) -> web.Application:
    """An aiohttp application serving ``app`` (a func.FunctionApp, or a FunctionTable from function_table)."""
    settings = settings or HostSettings()
    table = app if isinstance(app, FunctionTable) else function_table(app)
    host = DevHost(table, routes_for(table, settings.route_prefix), settings)
    web_app = web.Application(client_max_size=MAX_BODY)
    web_app[DEVHOST_KEY] = host
    web_app.router.add_route("*", "/{tail:.*}", host.handle)
    return web_app


__all__ = ["DevHost", "authorized", "build_routes", "call_function", "create_web_app", "to_aiohttp"]
