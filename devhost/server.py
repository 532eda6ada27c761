"""Serve the app's functions over HTTP with aiohttp, on one long-lived event loop.

``async def`` functions run on that loop, as in the Python worker; plain ``def``
functions run in the loop's thread pool. Nothing about a request (headers, query,
body) is logged: they can carry keys and tokens. The access log is one line per
request: method, path as sent without query string (escaped, ``devhost.accesslog``),
status, milliseconds.

Requests the Functions host would refuse are refused first, as it does: a request line,
header section or body over its limits (``devhost.limits``), malformed HTTP
(``devhost.protocol``), and a ``POST /admin/functions/<name>`` whose body is not JSON.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.accesslog import log_access, logged_path
from devhost.body import BodyRejected, read_body
from devhost.cookies import as_host_writes_them
from devhost.limits import (
    MAX_REQUEST_HEADER_COUNT,
    MAX_REQUEST_HEADERS_TOTAL_BYTES,
    MAX_REQUEST_LINE_BYTES,
    header_section_bytes,
    request_line_bytes,
)
from devhost.protocol import HEADERS_TOO_LARGE, INVALID_HOST, REQUEST_LINE_TOO_LONG, TOO_MANY_HEADERS, DevHostServer
from devhost.rejections import Rejection, rejected
from devhost.routing import FunctionTable, HttpRoute, build_routes, function_table, routes_for
from devhost.settings import HostSettings

logger = logging.getLogger("devhost")
ADMIN_PREFIX = "/admin/functions/"
#: How an HTTP function is run: (route, request, route parameters, body) -> the answer. The default calls the
#: Python function in this process; the runtime path (devhost.rpc) invokes it inside the worker.
HttpInvoker = Callable[[HttpRoute, web.BaseRequest, dict[str, str], bytes], Awaitable[web.StreamResponse]]


class FunctionFailed(RuntimeError):
    """A function failed outside this process (in the worker); the message carries its error, there is no local traceback."""


# --------------------------------------------------------------------------- keys


def _given_key(request: web.BaseRequest) -> str:
    return request.headers.get("x-functions-key") or request.query.get("code") or ""


def authorized(request: web.BaseRequest, level: str, settings: HostSettings) -> bool:
    """anonymous: open; function: function or master key; admin: master key. Unconfigured levels are open."""
    accepted: tuple[str | None, ...]
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
                invocation_id=str(uuid.uuid4()),
                function_name=name,
                function_directory="",
                trace_context=None,
                retry_context=None,
                thread_local_storage=threading.local(),
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
    for name, value in result.headers.items():  # repeated headers stay repeated
        if name.lower() == "set-cookie":  # as the worker and the host pass cookies on (devhost.cookies)
            for cookie in as_host_writes_them(value):
                response.headers.add("Set-Cookie", cookie)
        else:
            response.headers.add(name, value)
    if "Content-Type" not in response.headers:
        mimetype = result.mimetype
        response.headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    if result.status_code not in (204, 304):
        response.body = result.get_body() or b""
    return response


def _joined(pairs: Any, separator: str, lower: bool = False, keep_empty: bool = True) -> dict[str, str]:
    """A multi-dict as a plain dict, repeated keys joined with ``,`` as the host joins them.

    The host puts ASP.NET Core's ``StringValues.ToString()`` of each header and query parameter into the
    worker's ``RpcHttp`` (Azure/azure-functions-host ``GrpcMessageConversionExtensions.ToRpcHttp``), which
    joins repeated values with ``,`` and no space; it leaves out query parameters whose value is empty.
    """
    joined: dict[str, str] = {}
    for key, value in pairs.items():
        key = key.lower() if lower else key
        joined[key] = f"{joined[key]}{separator}{value}" if key in joined else value
    return joined if keep_empty else {key: value for key, value in joined.items() if value}


# --------------------------------------------------------------------------- the host


class DevHost:
    """Dispatches every request: CORS preflight, admin API, HTTP routes."""

    def __init__(
        self, table: FunctionTable, routes: list[HttpRoute], settings: HostSettings, http_invoker: HttpInvoker | None = None
    ) -> None:
        self.table = table
        self.routes = routes
        self.settings = settings
        self.others = {name.lower(): other for name, other in table.others.items()}
        self.http_invoker: HttpInvoker = http_invoker or invoke_in_process

    # CORS ------------------------------------------------------------------

    def _allowed_origin(self, origin: str | None) -> str | None:
        origins = self.settings.cors_origins
        if not origin or not origins:
            return None
        if "*" in origins:  # never with credentials: HostSettings refuses that combination
            return "*"
        return origin if origin.rstrip("/").lower() in {o.lower() for o in origins} else None

    def _add_cors(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
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

    def _preflight(self, request: web.BaseRequest) -> web.Response | None:
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

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        refusal = _refused_before_dispatch(request)
        if refusal is not None:
            return rejected(refusal, request.remote)
        started = time.perf_counter()
        try:
            response: web.StreamResponse = await self._dispatch(request)
        except BodyRejected as rejection:  # the access line below records it
            response = rejection.rejection.response()
        except Exception:
            logger.exception("devhost failed on %s %s", request.method, logged_path(request))
            response = web.Response(status=500)
        self._add_cors(request, response)
        log_access(request, response.status, (time.perf_counter() - started) * 1000)
        return response

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        preflight = self._preflight(request)
        if preflight is not None:
            return preflight
        if request.path.lower().startswith(ADMIN_PREFIX) and request.path.count("/") == 3:
            if request.method != "POST":
                return web.Response(status=405, headers={"Allow": "POST"})
            return await self._run_other(request, request.path[len(ADMIN_PREFIX) :])
        path = request.rel_url.raw_path
        matches = [(route, params) for route in self.routes if (params := route.match(path)) is not None]
        if not matches:
            return web.Response(status=404)
        for route, params in matches:
            if route.allows(request.method):
                return await self._run_http(request, route, params)
        allowed = sorted({method for route, _ in matches for method in route.methods or ()})
        return web.Response(status=405, headers={"Allow": ", ".join(allowed)})

    async def _run_http(self, request: web.BaseRequest, route: HttpRoute, params: dict[str, str]) -> web.StreamResponse:
        if not authorized(request, route.auth_level, self.settings):
            return web.Response(status=401)
        body = await read_body(request, self.settings.max_request_body_bytes)
        try:
            return await self.http_invoker(route, request, params, body)
        except FunctionFailed as failure:
            logger.error("function %s failed: %s", route.name, failure)
            return web.Response(status=500)
        except Exception:
            logger.exception("function %s raised", route.name)
            return web.Response(status=500)

    async def _run_other(self, request: web.BaseRequest, name: str) -> web.Response:
        """The admin API's ``POST /admin/functions/<name>``, checked in the host's order.

        The host's ``FunctionsController.Invoke`` (Azure/azure-functions-host,
        ``src/WebJobs.Script.WebHost/Controllers/FunctionsController.cs``) takes
        ``[FromBody] FunctionInvocation``: after the admin key, ASP.NET Core MVC answers 415 when
        no input formatter reads the Content-Type (the JSON formatter reads ``application/json``,
        ``text/json`` and ``application/*+json``), then the action answers 400 when the body did
        not bind (empty, not JSON, not an object), then 404 for an unknown function. A cross-site
        HTML form can only send form or text bodies, so requiring JSON keeps any web page from
        triggering functions on a developer's machine (Microsoft Learn, "Manually run a non
        HTTP-triggered function", sends ``Content-Type: application/json``).
        """
        if not authorized(request, "admin", self.settings):
            return web.Response(status=401)
        if not is_json_media_type(request.content_type):
            return web.Response(status=415)
        raw = await read_body(request, self.settings.max_request_body_bytes)
        try:
            document = json.loads(raw) if raw.strip() else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return web.Response(status=400)
        other = self.others.get(name.lower())
        if other is None:
            return web.Response(status=404)
        argument: Any = document.get("input")
        if other.trigger_type == "TimerTrigger":
            from azure.functions.timer import TimerRequest  # TimerRequest(past_due=...) works on 1.x and 2.x

            argument = TimerRequest(past_due=False)
        elif other.trigger_type == "QueueTrigger":
            argument = func.QueueMessage(id=str(uuid.uuid4()), body=argument or "")
        try:
            await call_function(other.function, _arguments(other.function, other.name, other.param_name, argument))
        except Exception:
            logger.exception("function %s raised", other.name)
            return web.Response(status=500)
        return web.Response(status=202)


async def invoke_in_process(
    route: HttpRoute, request: web.BaseRequest, params: dict[str, str], body: bytes
) -> web.StreamResponse:
    """The direct path: a ``func.HttpRequest`` for the function, called on this loop (async) or in its thread pool (sync)."""
    http_request = func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=_joined(request.headers, ",", lower=True),
        params=_joined(request.query, ",", keep_empty=False),
        route_params=params,
        body=body,
    )
    kwargs = _arguments(route.function, route.name, route.param_name, http_request)
    return to_aiohttp(await call_function(route.function, kwargs))


def is_json_media_type(content_type: str) -> bool:
    """``application/json``, ``text/json`` or ``application/*+json``: what the host's JSON input formatter reads."""
    media_type = content_type.strip().lower()
    return media_type in ("application/json", "text/json") or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _refused_before_dispatch(request: web.BaseRequest) -> Rejection | None:
    """414/431/400 for what the parser let through but Kestrel refuses before any function runs.

    The parser bounds the target and each header on its own; Kestrel counts the whole request
    line, all header lines together, and the headers (``devhost.limits``), and answers 400 to a
    Host header it cannot parse (which would otherwise fail when the function's URL is built).
    """
    if request_line_bytes(request.method, request.raw_path, request.version) > MAX_REQUEST_LINE_BYTES:
        return REQUEST_LINE_TOO_LONG
    if len(request.raw_headers) > MAX_REQUEST_HEADER_COUNT:
        return TOO_MANY_HEADERS
    if header_section_bytes(request.raw_headers) > MAX_REQUEST_HEADERS_TOTAL_BYTES:
        return HEADERS_TOO_LARGE
    try:
        request.url  # noqa: B018 - built from the Host header; yarl raises for one it cannot parse
    except ValueError:  # UnicodeError (IDNA) is a ValueError too
        return INVALID_HOST
    return None


def create_server(app: Any, settings: HostSettings | None = None, http_invoker: HttpInvoker | None = None) -> DevHostServer:
    """An aiohttp low-level server for ``app`` (a func.FunctionApp, or a FunctionTable from function_table)."""
    settings = settings or HostSettings()
    table = function_table(app)
    return DevHostServer(DevHost(table, routes_for(table, settings.route_prefix), settings, http_invoker).handle)


@dataclass
class RunningHost:
    """A started server: its runner (``await host.stop()``) and base URL."""

    runner: web.ServerRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(
    app: Any, settings: HostSettings, host: str = "127.0.0.1", port: int = 0, http_invoker: HttpInvoker | None = None
) -> RunningHost:
    """Listen on ``host:port`` (0: a free port) on the running loop, the way ``python -m devhost`` does."""
    runner = web.ServerRunner(create_server(app, settings, http_invoker), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return RunningHost(runner, f"http://{shown}:{bound_port}")


__all__ = [
    "DevHost",
    "FunctionFailed",
    "HttpInvoker",
    "RunningHost",
    "authorized",
    "build_routes",
    "call_function",
    "create_server",
    "invoke_in_process",
    "start_server",
    "to_aiohttp",
]
