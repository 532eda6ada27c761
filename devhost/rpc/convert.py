"""What the host puts into an ``InvocationRequest`` and makes of the ``InvocationResponse``.

HTTP, as the Functions host builds ``RpcHttp`` (Azure/azure-functions-host,
``src/WebJobs.Script.Grpc/MessageExtensions/GrpcMessageConversionExtensions.cs``, ``ToRpcHttp``):
``url`` is scheme, Host header, path and query string as sent; header names lower-cased, a repeated
header's values joined with ``,`` (ASP.NET Core's ``StringValues.ToString()``), empty values kept (the
Python runtime does not ask for ``IgnoreEmptyValuedRpcHttpHeaders``); query parameters joined the same way,
empty ones left out; route parameters in ``params``; the body as bytes, because the runtime declares
``RawHttpBodyBytes`` and ``RpcHttpBodyOnly`` (its ``worker_init_request``), and only when there is one.

Other values go as the host's ``ToRpc`` sends them: strings as ``string``, numbers, dates and objects as
``json``. A timer's payload is the ``TimerInfo`` JSON, ``{"Schedule": {"AdjustForDST": true},
"ScheduleStatus": ..., "IsPastDue": ...}`` (Microsoft Learn, "Timer trigger for Azure Functions", Usage;
Azure/azure-functions-python-library ``tests/test_timer.py``). A queue message is its text, with
``Id``, ``DequeueCount``, ``InsertionTime``, ``ExpirationTime``, ``NextVisibleTime`` and ``PopReceipt``
in the trigger metadata (what ``azure.functions.queue.QueueMessageInConverter.decode`` reads).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devhost.cookies import set_cookie_value


def joined(pairs: Iterable[tuple[str, str]], lower: bool = False, keep_empty: bool = True) -> dict[str, str]:
    """Multi-valued pairs as one value per key, joined with ``,`` in arrival order."""
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key.lower() if lower else key, []).append(value)
    return {key: ",".join(items) for key, items in values.items() if keep_empty or ",".join(items)}


def rpc_http_request(rpc: Any, request: web.BaseRequest, params: Mapping[str, str], body: bytes) -> Any:
    """``TypedData(http=RpcHttp)`` for an incoming request, as the host sends it to a Python worker."""
    http = rpc.RpcHttp(
        method=request.method,
        url=f"{request.scheme}://{request.host}{request.raw_path}",
        headers=joined(request.headers.items(), lower=True),
        query=joined(request.query.items(), keep_empty=False),
        params={name: value for name, value in params.items() if value is not None},
    )
    if body:
        http.body.bytes = body
    return rpc.TypedData(http=http)


def rpc_http_from_function_request(rpc: Any, request: Any) -> Any:
    """``TypedData(http=RpcHttp)`` from a ``func.HttpRequest`` (when something calls a route's function directly)."""
    http = rpc.RpcHttp(
        method=request.method,
        url=request.url,
        headers={name.lower(): value for name, value in request.headers.items()},
        query={name: value for name, value in request.params.items() if value},
        params=dict(request.route_params),
    )
    body = request.get_body()
    if body:
        http.body.bytes = body
    return rpc.TypedData(http=http)


def typed_bytes(data: Any) -> bytes:
    """The bytes of a ``TypedData`` body (bytes, stream, string or json)."""
    kind = data.WhichOneof("data")
    if kind in ("bytes", "stream"):
        return bytes(getattr(data, kind))
    if kind in ("string", "json"):
        return str(getattr(data, kind)).encode()
    return b""


def set_cookie(cookie: Any) -> str:
    """A ``Set-Cookie`` value for an ``RpcHttpCookie``, as the host writes it (:mod:`devhost.cookies`)."""
    same_site = {1: "lax", 2: "strict", 3: "none"}.get(int(cookie.same_site))  # SameSite: None 0, Lax, Strict, ExplicitNone
    return set_cookie_value(
        cookie.name,
        cookie.value,
        expires=cookie.expires.value.ToDatetime(tzinfo=UTC) if cookie.HasField("expires") else None,
        max_age=cookie.max_age.value if cookie.HasField("max_age") else None,
        domain=cookie.domain.value if cookie.HasField("domain") else None,
        path=cookie.path.value if cookie.HasField("path") else None,
        secure=cookie.HasField("secure") and cookie.secure.value,
        same_site=same_site,
        http_only=cookie.HasField("http_only") and cookie.http_only.value,
    )


def response_from_rpc_http(data: Any) -> web.Response:
    """An aiohttp response from the ``RpcHttp`` a function returned: status, headers (in order), cookies, body."""
    http = data.http
    status = int(http.status_code or 200)
    response = web.Response(status=status)
    for name, value in http.headers.items():
        response.headers.add(name, value)
    for cookie in http.cookies:
        response.headers.add("Set-Cookie", set_cookie(cookie))
    if status not in (204, 304):
        response.body = typed_bytes(http.body)
    return response


def json_data(rpc: Any, value: Any) -> Any:
    return rpc.TypedData(json=json.dumps(value, separators=(",", ":")))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def system_metadata(rpc: Any, function_name: str) -> Any:
    """The ``sys`` binding data every trigger carries (method name, UTC now, a random GUID)."""
    return json_data(rpc, {"MethodName": function_name, "UtcNow": _iso(datetime.now(UTC)), "RandGuid": str(uuid.uuid4())})


def timer_payload(rpc: Any, past_due: bool, schedule_status: Mapping[str, Any] | None) -> Any:
    return json_data(
        rpc, {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": dict(schedule_status or {}) or None, "IsPastDue": past_due}
    )


def queue_payload(rpc: Any, message: Any) -> tuple[Any, dict[str, Any]]:
    """(the message as ``TypedData``, its trigger metadata) for a ``func.QueueMessage``."""
    body = message.get_body()
    try:
        data = rpc.TypedData(string=body.decode("utf-8"))
    except UnicodeDecodeError:
        data = rpc.TypedData(bytes=body)
    metadata: dict[str, Any] = {}
    if message.id is not None:
        metadata["Id"] = rpc.TypedData(string=str(message.id))
    if message.dequeue_count is not None:
        metadata["DequeueCount"] = json_data(rpc, int(message.dequeue_count))
    if message.pop_receipt is not None:
        metadata["PopReceipt"] = rpc.TypedData(string=str(message.pop_receipt))
    for name, moment in (
        ("InsertionTime", message.insertion_time),
        ("ExpirationTime", message.expiration_time),
        ("NextVisibleTime", message.time_next_visible),
    ):
        if moment is not None:
            metadata[name] = json_data(rpc, _iso(moment))
    return data, metadata
