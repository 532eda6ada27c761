"""devhost in-process (create_web_app on a real loopback socket): settings variants, loops and threads."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from devhost import HostSettings, HostSettingsError, build_routes, function_table

pytestmark = pytest.mark.integration  # a real loopback socket


async def test_async_runs_on_the_server_loop_and_sync_in_a_worker_thread(inproc, sample_module):
    base, session = await inproc()
    async with session.get(f"{base}/api/hello/ada") as response:
        assert response.status == 200
    thread, loop = sample_module.SEEN["async"]
    assert thread == threading.get_ident() and loop is asyncio.get_running_loop()
    async with session.post(f"{base}/api/echo", data=b"x") as response:
        assert response.status == 201 and await response.read() == b"x"
    assert sample_module.SEEN["sync"] != threading.get_ident()


async def test_empty_route_prefix(inproc):
    base, session = await inproc(HostSettings(route_prefix=""))
    async with session.get(f"{base}/hello/ada") as response:
        assert response.status == 200 and (await response.json())["name"] == "ada"
    async with session.get(f"{base}/api/hello/ada") as response:
        assert response.status == 404


async def test_only_the_master_key_configured_leaves_function_level_open(inproc):
    base, session = await inproc(HostSettings(master_key="mkey"))
    async with session.get(f"{base}/api/items/1") as response:
        assert response.status == 200
    async with session.get(f"{base}/api/secret") as response:
        assert response.status == 401 and await response.read() == b""
    async with session.get(f"{base}/api/secret", params={"code": "mkey"}) as response:
        assert response.status == 200
    async with session.post(f"{base}/admin/functions/tick", headers={"x-functions-key": "nope"}) as response:
        assert response.status == 401


async def test_only_the_function_key_configured_leaves_admin_level_open(inproc):
    base, session = await inproc(HostSettings(function_key="fkey"))
    async with session.get(f"{base}/api/items/1") as response:
        assert response.status == 401
    async with session.get(f"{base}/api/items/1", headers={"X-Functions-Key": "fkey"}) as response:
        assert response.status == 200 and await response.text() == "GET 1"
    async with session.get(f"{base}/api/secret") as response:
        assert response.status == 200


async def test_cors_any_origin_without_credentials_and_never_with_them(inproc):
    base, session = await inproc(HostSettings(cors_origins=("*",)))
    async with session.get(f"{base}/api/hello/a", headers={"Origin": "http://x.test"}) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
    async with session.options(
        f"{base}/api/echo", headers={"Origin": "http://x.test", "Access-Control-Request-Method": "PUT"}
    ) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Access-Control-Allow-Methods"] == "PUT"
        assert "Access-Control-Allow-Headers" not in response.headers  # none requested
    # Any origin with credentials would let every web page call the API as the user: refused, as
    # Azure refuses it (tests/devhost/test_security.py checks the command line and local.settings.json).
    with pytest.raises(HostSettingsError, match=r"any origin \(\*\) together with credentials"):
        HostSettings(cors_origins=("*",), cors_credentials=True)


async def test_without_cors_options_is_an_ordinary_request(inproc):
    base, session = await inproc()
    async with session.options(
        f"{base}/api/hello/a", headers={"Origin": "http://x.test", "Access-Control-Request-Method": "GET"}
    ) as response:
        assert response.status == 405 and response.headers["Allow"] == "GET"
        assert "Access-Control-Allow-Origin" not in response.headers
    async with session.options(f"{base}/api/files/x") as response:  # a route for every method gets OPTIONS
        assert response.status == 200 and await response.text() == "OPTIONS x"


async def test_admin_api_rejects_a_body_that_is_not_json(inproc):
    base, session = await inproc()
    json_type = {"Content-Type": "application/json"}
    async with session.post(f"{base}/admin/functions/work", data=b"{not json", headers=json_type) as response:
        assert response.status == 400
    async with session.post(f"{base}/admin/functions/work", data=b"{not json") as response:
        assert response.status == 415  # the content type is checked first, as the host's MVC formatters do


def test_build_routes_is_the_registered_functions_and_reusable(sample_module):
    routes = build_routes(sample_module.app, "api")
    assert build_routes(sample_module.app, "api") == routes  # get_functions() ran once; the table is cached
    by_name = {route.name: route for route in routes}
    assert by_name["hello"].path == "/api/hello/{name}" and by_name["hello"].methods == ("GET",)
    assert by_name["item"].auth_level == "function" and by_name["secret"].auth_level == "admin"
    assert by_name["files"].methods is None
    assert by_name["inspect_request"].param_name == "request"
    names = [route.name for route in routes]
    assert names.index("hello_world") < names.index("hello")  # literals first
    assert (
        build_routes(sample_module.app, "")[0].path.startswith("/") and "/api/" not in build_routes(sample_module.app, "")[0].path
    )
    others = function_table(sample_module.app).others
    assert {name: other.trigger_type for name, other in others.items()} == {
        "tick": "TimerTrigger",
        "tick_fails": "TimerTrigger",
        "work": "QueueTrigger",
    }


async def test_repeated_headers_query_values_and_cookies(inproc):
    base, session = await inproc()
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # raw: aiohttp's client merges repeated headers
    writer.write(b"GET /api/inspect/a?x=1&x=2 HTTP/1.1\r\nHost: t\r\nX-Custom: p\r\nx-custom: q\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    # The host joins repeated values with "," (ASP.NET Core StringValues.ToString(); Azure/azure-functions-host
    # GrpcMessageConversionExtensions.ToRpcHttp), and writes cookies with CookieOptions' default path "/"
    # (the worker moves Set-Cookie headers into RpcHttp.cookies: azure.functions http.HttpResponseConverter).
    assert body["params"] == {"x": "1,2"} and body["header"] == "p,q"
    async with session.get(f"{base}/api/cookies") as response:
        assert response.status == 204 and response.headers.getall("Set-Cookie") == ["a=1; path=/", "b=2; path=/"]
        assert await response.read() == b""
