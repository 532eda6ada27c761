"""The function table from the worker's metadata, with functions that run inside the worker.

The host learns the app's functions from ``FunctionMetadataResponse``: each one's name, id and
``raw_bindings`` (the binding JSON the app's decorators produce, e.g. ``{"type": "httpTrigger",
"route": "token", "methods": [...], "authLevel": "ANONYMOUS"}``). devhost builds its usual
:class:`~devhost.routing.FunctionTable` from them, so routing, keys, CORS, timers (and their singleton)
and queue polling stay the host's jobs, unchanged. Each entry's ``function`` is an ``async`` callable with
the trigger's parameter name that sends an ``InvocationRequest`` instead of calling Python code:

- HTTP routes: the server calls :meth:`RuntimeFunctions.invoke_http` with the aiohttp request (so the
  ``RpcHttp`` is built from what arrived, as the host builds it); called directly with a ``func.HttpRequest``
  the function converts that instead and returns a ``func.HttpResponse``;
- timers get a ``TimerRequest`` and send its ``IsPastDue`` (and schedule status) as the ``TimerInfo`` JSON;
- queue triggers get a ``func.QueueMessage`` and send its text with its trigger metadata.

An invocation the worker reports as failed raises :class:`InvocationFailed`: the server answers 500,
the queue runner retries and then poisons the message, the timer logs it, as they do for a function
that raised in-process.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.routing import FunctionTable, HttpRoute, OtherFunction
from devhost.rpc.channel import WorkerChannel
from devhost.rpc.convert import (
    queue_payload,
    response_from_rpc_http,
    rpc_http_from_function_request,
    rpc_http_request,
    system_metadata,
    timer_payload,
    typed_bytes,
)
from devhost.server import FunctionFailed

#: raw binding types -> the trigger class names devhost's table uses (azure.functions.decorators' names)
TRIGGER_TYPES = {"timerTrigger": "TimerTrigger", "queueTrigger": "QueueTrigger"}
#: raw binding keys -> devhost's binding keys (the decorators' attribute names)
BINDING_KEYS = {
    "schedule": "schedule",
    "runOnStartup": "run_on_startup",
    "useMonitor": "use_monitor",
    "queueName": "queue_name",
    "connection": "connection",
}


class InvocationFailed(FunctionFailed):
    """The worker ran the function and reports a failure (the function raised, or its result did not convert)."""


def _trigger(raw_bindings: list[str]) -> dict[str, Any]:
    for raw in raw_bindings:
        binding = json.loads(raw)
        if str(binding.get("direction", "")).upper() == "IN" and str(binding.get("type", "")).endswith("Trigger"):
            return dict(binding)
    raise ValueError("a function without a trigger binding")


def _with_parameter(name: str, call: Callable[[Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An ``async def`` taking the trigger value as keyword ``name``, as devhost calls a user function."""

    async def function(**kwargs: Any) -> Any:
        return await call(kwargs.get(name))

    function.__signature__ = inspect.Signature([inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)])  # type: ignore[attr-defined]  # inspect reads it
    return function


class RuntimeFunctions:
    """The worker's functions as devhost's FunctionTable, and the HTTP invoker the server uses for them."""

    def __init__(self, channel: WorkerChannel) -> None:
        self.channel = channel
        self.rpc = channel.rpc
        self._ids: dict[str, str] = {}
        self._params: dict[str, str] = {}
        self.table = self._build()

    def _build(self) -> FunctionTable:
        routes: list[HttpRoute] = []
        others: dict[str, OtherFunction] = {}
        for metadata in self.channel.functions:
            name = metadata.name
            trigger = _trigger(list(metadata.raw_bindings))
            param = str(trigger.get("name") or "req")
            self._ids[name], self._params[name] = metadata.function_id, param
            kind = str(trigger.get("type"))
            if kind == "httpTrigger":
                methods = trigger.get("methods")
                route = trigger.get("route")
                routes.append(
                    HttpRoute(
                        name=name,
                        template=str(route if route is not None else name).strip("/"),
                        methods=tuple(str(m).upper() for m in methods) if methods else None,
                        auth_level=str(trigger.get("authLevel") or "function").lower(),
                        param_name=param,
                        function=_with_parameter(param, self._http_caller(name)),
                    )
                )
            else:
                binding = {BINDING_KEYS[key]: value for key, value in trigger.items() if key in BINDING_KEYS}
                trigger_type = TRIGGER_TYPES.get(kind, kind[:1].upper() + kind[1:])
                caller = self._timer_caller(name) if kind == "timerTrigger" else self._queue_caller(name)
                others[name] = OtherFunction(name, trigger_type, param, _with_parameter(param, caller), binding)
        return FunctionTable(tuple(routes), others)

    async def _invoke(self, name: str, data: Any, metadata: dict[str, Any]) -> Any:
        rpc = self.rpc
        metadata.setdefault("sys", system_metadata(rpc, name))
        response = await self.channel.invoke(
            self._ids[name], [rpc.ParameterBinding(name=self._params[name], data=data)], metadata
        )
        if response.result.status != rpc.StatusResult.Success:
            exception = response.result.exception
            raise InvocationFailed(exception.message or exception.stack_trace or "the worker reports a failure")
        return response

    # HTTP ---------------------------------------------------------------------

    async def invoke_http(self, route: HttpRoute, request: web.BaseRequest, params: dict[str, str], body: bytes) -> web.Response:
        """The function's answer to ``request``, from the ``RpcHttp`` it returned."""
        response = await self._invoke(route.name, rpc_http_request(self.rpc, request, params, body), {})
        return self._http_answer(response)

    def _http_answer(self, response: Any) -> web.Response:
        returned = response.return_value
        if returned.WhichOneof("data") == "http":
            return response_from_rpc_http(returned)
        if returned.WhichOneof("data") is None:  # the function returned None
            return web.Response(status=204)
        raise InvocationFailed("an HTTP function returned something other than an HttpResponse")

    def _http_caller(self, name: str) -> Callable[[Any], Awaitable[func.HttpResponse | None]]:
        async def call(request: Any) -> func.HttpResponse | None:
            returned = (await self._invoke(name, rpc_http_from_function_request(self.rpc, request), {})).return_value
            if returned.WhichOneof("data") != "http":
                return None
            http = returned.http
            return func.HttpResponse(typed_bytes(http.body), status_code=int(http.status_code or 200), headers=dict(http.headers))

        return call

    # timers and queues ----------------------------------------------------------

    def _timer_caller(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def call(timer: Any) -> None:
            past_due = bool(getattr(timer, "past_due", False))
            status = getattr(timer, "schedule_status", None)
            await self._invoke(name, timer_payload(self.rpc, past_due, status if isinstance(status, dict) else None), {})

        return call

    def _queue_caller(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def call(message: Any) -> None:
            data, metadata = queue_payload(self.rpc, message)
            await self._invoke(name, data, metadata)

        return call


async def start_runtime_functions(app_dir: str, python: str | None = None) -> RuntimeFunctions:
    """Start the worker for the app in ``app_dir`` and build the table (the worker's environment is this process's)."""
    channel = await WorkerChannel.start(app_dir, python=python or sys.executable)
    return RuntimeFunctions(channel)
