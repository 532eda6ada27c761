"""Unit tests of devhost's runtime path (devhost.rpc): framing, host.json log levels, the worker mode setting,
and (where the message classes are present, Python 3.13+) the conversions between HTTP, timer and queue
payloads and the FunctionRpc messages."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devhost.rpc import frames, logs
from devhost.rpc.channel import worker_environment
from devhost.settings import HostSettingsError, runtime_available, worker_mode

# ----------------------------------------------------------------------------- frames


def test_frames_round_trip_and_a_clean_end():
    stream = io.BytesIO(frames.encode(b"one") + frames.encode(b"") + frames.encode(b"three"))
    assert [frames.read_frame(stream) for _ in range(4)] == [b"one", b"", b"three", None]


@pytest.mark.parametrize("data", [b"\x00\x00", frames.encode(b"abcdef")[:-2]])
def test_a_cut_frame_is_an_error_not_a_short_message(data):
    with pytest.raises(frames.FrameError):
        frames.read_frame(io.BytesIO(data))


async def test_async_frames_read_like_the_blocking_ones():
    import asyncio

    reader = asyncio.StreamReader()
    reader.feed_data(frames.encode(b"abc") + frames.encode(b"de"))
    reader.feed_eof()
    assert [await frames.read_frame_async(reader) for _ in range(3)] == [b"abc", b"de", None]


# ----------------------------------------------------------------------------- log levels


def write_host_json(tmp_path: Path, levels: dict[str, str]) -> Path:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "logging": {"logLevel": levels}}), encoding="utf-8")
    return tmp_path


def test_the_longest_matching_category_decides_else_default(tmp_path):
    # .NET's logger filter: the rule with the longest category prefix wins, "default" otherwise (Microsoft Learn,
    # "How to configure monitoring for Azure Functions", Configure categories).
    levels = logs.LogLevels.from_host_json(
        write_host_json(tmp_path, {"default": "Warning", "Function": "Information", "Function.quiet": "Error", "Host": "None"})
    )
    assert levels.minimum("Function.quiet.User") == logging.ERROR
    assert levels.minimum("function.loud.User") == logging.INFO  # case-insensitive
    assert levels.minimum("Worker.Python") == logging.WARNING
    assert levels.minimum("Host.Results") > logging.CRITICAL  # None: off


def test_without_host_json_everything_from_information_shows(tmp_path):
    assert logs.LogLevels.from_host_json(tmp_path) == logs.LogLevels(logging.INFO, (), False)


def rpc_log(level: int, log_category: int, message: str = "m", category: str = "shared.http") -> SimpleNamespace:
    return SimpleNamespace(level=level, log_category=log_category, message=message, category=category)


def routed(caplog: pytest.LogCaptureFixture, log: SimpleNamespace, function: str | None, levels: logs.LogLevels) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        logs.route_log(log, function, levels)
    return [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records]


def test_user_logs_in_an_invocation_are_the_functions_user_category(caplog):
    # FunctionRpc.proto: Level Information = 2, Warning = 3; RpcLogCategory User = 0, System = 1.
    levels = logs.LogLevels(logging.INFO, (("function.quiet", logging.WARNING),))
    assert routed(caplog, rpc_log(2, 0, "issued"), "issue_token", levels) == [
        "Function.issue_token.User INFO [shared.http] issued"
    ]
    assert routed(caplog, rpc_log(2, 0), "quiet", levels) == []
    assert routed(caplog, rpc_log(3, 0, "careful"), "quiet", levels) == ["Function.quiet.User WARNING [shared.http] careful"]
    assert routed(caplog, rpc_log(2, 0, "at import"), None, levels) == ["Worker.Python INFO [shared.http] at import"]


def test_system_logs_show_only_when_asked_for(caplog):
    quiet, verbose = logs.LogLevels(), logs.LogLevels(system_logs=True)
    log = rpc_log(2, 1, "Function name: x", "azure.functions")
    assert routed(caplog, log, "x", quiet) == []
    assert routed(caplog, log, "x", verbose) == ["Worker.Python.System INFO [azure.functions] Function name: x"]
    assert routed(caplog, rpc_log(6, 0), "x", verbose) == []  # RpcLog.None is never written


# ----------------------------------------------------------------------------- the worker mode and environment


def test_direct_is_always_possible_and_unknown_values_are_refused():
    assert worker_mode({"DEVHOST_WORKER": "direct"}) == "direct"
    assert worker_mode({"DEVHOST_WORKER": " Direct "}) == "direct"
    with pytest.raises(HostSettingsError, match="DEVHOST_WORKER must be one of"):
        worker_mode({"DEVHOST_WORKER": "grpc"})


def test_auto_takes_the_runtime_where_it_can_run():
    expected = "runtime" if runtime_available() else "direct"
    assert worker_mode({}) == expected
    assert runtime_available() == (sys.version_info >= (3, 13))  # installed wherever Python is 3.13+ (requirements.txt)


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="the runtime can run here")
def test_asking_for_the_runtime_below_3_13_is_refused_with_the_reason():
    with pytest.raises(HostSettingsError, match=r"needs Python 3\.13"):
        worker_mode({"DEVHOST_WORKER": "runtime"})


def test_the_worker_gets_the_hosts_settings_without_placeholder_signals(tmp_path):
    env = worker_environment(
        tmp_path, {"AUTH_MODE": "dev", "CONTAINER_NAME": "c", "WEBSITE_PLACEHOLDER_MODE": "1", "WEBSITE_INSTANCE_ID": "i"}
    )
    assert env["AUTH_MODE"] == "dev" and env["WEBSITE_INSTANCE_ID"] == "i"  # the app's in-Azure guard still sees it
    assert "CONTAINER_NAME" not in env and "WEBSITE_PLACEHOLDER_MODE" not in env
    assert env["AzureWebJobsScriptRoot"] == str(tmp_path) and env["FUNCTIONS_WORKER_RUNTIME"] == "python"


# ----------------------------------------------------------------------------- conversions (message classes needed)


@pytest.fixture(scope="module")
def rpc() -> Any:
    pytest.importorskip("google.protobuf", reason="protobuf is installed for Python 3.13+ (requirements-dev.txt)")
    from devhost.rpc import protos

    if not (protos.DEFAULT_DIR / ".wheel-sha256").exists():
        pytest.skip("the FunctionRpc classes are not prepared: make setup313 (python -m devhost.rpc.protos)")
    return protos.load()


def test_rpc_http_is_built_as_the_host_builds_it(rpc):
    # Azure/azure-functions-host GrpcMessageConversionExtensions.ToRpcHttp: lower-case header names, repeated
    # values joined with ",", empty header values kept, empty query values dropped, raw body bytes.
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from devhost.rpc.convert import rpc_http_request

    headers = CIMultiDict([("Host", "127.0.0.1:7071"), ("X-Multi", "a"), ("x-multi", "b"), ("X-Empty", "")])
    request = make_mocked_request("POST", "/api/token/refresh?a=1&a=2&blank=", headers=headers)
    data = rpc_http_request(rpc, request, {"id": "7"}, b'{"x": 1}')
    http = data.http
    assert data.WhichOneof("data") == "http"
    assert http.method == "POST" and http.url == "http://127.0.0.1:7071/api/token/refresh?a=1&a=2&blank="
    assert dict(http.headers) == {"host": "127.0.0.1:7071", "x-multi": "a,b", "x-empty": ""}
    assert dict(http.query) == {"a": "1,2"}
    assert dict(http.params) == {"id": "7"}
    assert http.body.bytes == b'{"x": 1}'
    assert rpc_http_request(rpc, request, {}, b"").http.body.WhichOneof("data") is None


def test_the_answer_keeps_status_headers_body_and_cookies(rpc):
    from devhost.rpc.convert import response_from_rpc_http

    null_string = rpc.NullableString
    http = rpc.RpcHttp(status_code="201", headers={"content-type": "application/json", "cache-control": "no-store"})
    http.body.bytes = b'{"ok": true}'
    http.cookies.add(name="a", value="1 2")
    http.cookies.add(name="b", value="2", path=null_string(value="/api"), same_site=rpc.RpcHttpCookie.SameSite.Strict)
    response = response_from_rpc_http(rpc.TypedData(http=http))
    assert response.status == 201 and response.body == b'{"ok": true}'
    assert response.headers["Content-Type"] == "application/json" and response.headers["Cache-Control"] == "no-store"
    assert response.headers.getall("Set-Cookie") == ["a=1%202; path=/", "b=2; path=/api; samesite=strict"]
    empty = rpc.RpcHttp(status_code="204")
    empty.body.string = "ignored"
    assert response_from_rpc_http(rpc.TypedData(http=empty)).body is None


def test_a_timer_payload_is_the_timer_info_json_the_library_reads(rpc):
    # Microsoft Learn, "Timer trigger for Azure Functions" (Usage): {"Schedule": {"AdjustForDST": true},
    # "ScheduleStatus": {...}, "IsPastDue": false}; azure.functions.timer decodes it.
    from azure.functions.meta import Datum
    from azure.functions.timer import TimerRequestConverter

    from devhost.rpc.convert import timer_payload

    data = timer_payload(rpc, True, None)
    assert json.loads(data.json) == {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": True}
    timer = TimerRequestConverter.decode(Datum(data.json, "json"), trigger_metadata={})
    assert timer.past_due is True


def test_a_queue_message_goes_as_text_with_its_trigger_metadata(rpc):
    # What azure.functions.queue.QueueMessageInConverter.decode reads: Id, DequeueCount, PopReceipt and the times.
    from azure.functions.queue import QueueMessage  # what devhost.queues hands a queue trigger

    from devhost.rpc.convert import queue_payload

    inserted = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    message = QueueMessage(id="m1", body=b'{"rowKey": "ab"}', pop_receipt="r", dequeue_count=3, insertion_time=inserted)
    data, metadata = queue_payload(rpc, message)
    assert data.string == '{"rowKey": "ab"}'
    assert metadata["Id"].string == "m1" and metadata["PopReceipt"].string == "r"
    assert json.loads(metadata["DequeueCount"].json) == 3
    assert json.loads(metadata["InsertionTime"].json) == "2026-11-27T09:30:00+00:00"
    assert "ExpirationTime" not in metadata
    binary, _ = queue_payload(rpc, QueueMessage(id="m2", body=b"\xff\xfe"))
    assert binary.bytes == b"\xff\xfe"
