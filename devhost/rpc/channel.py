"""The host's side of the worker: start it, initialise it, index and load the functions, invoke them.

The order is the Functions host's for a worker-indexed (v2) Python app: start the process and wait for its
``StartStream``; ``WorkerInitRequest`` (the runtime indexes the app here, and fails init if it cannot);
``FunctionsMetadataRequest`` (the indexed functions, their ``raw_bindings``); one ``FunctionLoadRequest``
per function; then ``InvocationRequest``s, many at a time, each answered by the ``InvocationResponse``
with its ``invocation_id``. ``RpcLog`` messages may come at any time (:mod:`devhost.rpc.logs`).

The worker's environment is the host's, as on the platform (app settings are environment variables),
plus ``AzureWebJobsScriptRoot`` and ``FUNCTIONS_WORKER_RUNTIME``, minus ``CONTAINER_NAME`` and
``WEBSITE_PLACEHOLDER_MODE``: with those the platform's proxy worker takes itself for a Linux Consumption
placeholder still waiting for its app (``proxy_worker/utils/dependency.py``), which a local run never is.
``WEBSITE_INSTANCE_ID`` stays: the app reads it to refuse dev authentication in Azure, and the runtime
(1.3.0) does not read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devhost.rpc import frames, protos
from devhost.rpc.logs import SYSTEM_LOGS_SETTING, LogLevels, route_log

logger = logging.getLogger("devhost.rpc")
ROOT = Path(__file__).resolve().parents[2]
#: Environment variables a local worker must not see (placeholder-mode signals of Linux Consumption).
STRIPPED_ENV = ("CONTAINER_NAME", "WEBSITE_PLACEHOLDER_MODE")
HOST_VERSION = "4.0.0-devhost"
START_TIMEOUT_SECONDS = 60.0


class WorkerError(RuntimeError):
    """The worker failed a request, or is gone."""


def worker_environment(app_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    worker_env = {name: value for name, value in env.items() if name not in STRIPPED_ENV}
    worker_env["AzureWebJobsScriptRoot"] = str(app_dir)
    worker_env["FUNCTIONS_WORKER_RUNTIME"] = "python"
    worker_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    worker_env.setdefault("PYTHONUNBUFFERED", "1")
    return worker_env


def status_error(what: str, result: Any) -> WorkerError | None:
    """A WorkerError naming the exception type when ``result`` (a StatusResult) is not Success."""
    if result.status == 1:  # StatusResult.Success
        return None
    exception = result.exception
    detail = f"{exception.message}" if exception.message else "no details"
    return WorkerError(f"{what} failed in the worker: {detail}")


class WorkerChannel:
    """One worker process and the messages in flight with it."""

    def __init__(self, process: asyncio.subprocess.Process, rpc: Any, app_dir: Path, levels: LogLevels) -> None:
        self.process, self.rpc, self.app_dir, self.levels = process, rpc, app_dir, levels
        self.functions: list[Any] = []  # RpcFunctionMetadata, after start
        self._names: dict[str, str] = {}  # function_id -> name
        self._invocations: dict[str, tuple[asyncio.Future[Any], str]] = {}
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name="devhost-worker-reader")
        self.exited = asyncio.Event()

    @classmethod
    async def start(
        cls,
        app_dir: Path | str,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        levels: LogLevels | None = None,
    ) -> WorkerChannel:
        """Start the worker, then init, index and load every function; raises WorkerError when the app cannot be indexed."""
        app_dir = Path(app_dir).resolve()  # noqa: ASYNC240 - once, at start-up
        rpc = await asyncio.to_thread(protos.load)  # may download the message classes on first use
        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "devhost.rpc.worker",
            cwd=app_dir,
            env=worker_environment(app_dir, os.environ if env is None else env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,
        )
        system_logs = (os.environ if env is None else env).get(SYSTEM_LOGS_SETTING, "").strip().lower() in ("1", "true", "yes")
        channel = cls(process, rpc, app_dir, levels or LogLevels.from_host_json(app_dir, system_logs))
        try:
            await asyncio.wait_for(channel._start(), START_TIMEOUT_SECONDS)
        except BaseException:
            await channel.stop()
            raise
        return channel

    async def _start(self) -> None:
        rpc = self.rpc
        await self._started
        init = await self._request(
            "worker_init_response",
            rpc.StreamingMessage(
                request_id=str(uuid.uuid4()),
                worker_init_request=rpc.WorkerInitRequest(
                    host_version=HOST_VERSION, function_app_directory=str(self.app_dir), worker_directory=str(ROOT)
                ),
            ),
        )
        if error := status_error("WorkerInitRequest (indexing the app)", init.result):
            raise error
        metadata = await self._request(
            "function_metadata_response",
            rpc.StreamingMessage(
                request_id=str(uuid.uuid4()),
                functions_metadata_request=rpc.FunctionsMetadataRequest(function_app_directory=str(self.app_dir)),
            ),
        )
        if error := status_error("FunctionsMetadataRequest", metadata.result):
            raise error
        self.functions = list(metadata.function_metadata_results)
        for function in self.functions:
            self._names[function.function_id] = function.name
            loaded = await self._request(
                "function_load_response",
                rpc.StreamingMessage(
                    request_id=str(uuid.uuid4()),
                    function_load_request=rpc.FunctionLoadRequest(function_id=function.function_id, metadata=function),
                ),
            )
            if error := status_error(f"FunctionLoadRequest for {function.name}", loaded.result):
                raise error

    async def _request(self, answer: str, message: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[answer] = future
        self._send(message)
        try:
            return await future
        finally:
            self._waiting.pop(answer, None)

    def _send(self, message: Any) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.exited.is_set():
            raise WorkerError("the worker is not running")
        stdin.write(frames.encode(message.SerializeToString()))

    async def invoke(self, function_id: str, input_data: list[Any], trigger_metadata: Mapping[str, Any] | None = None) -> Any:
        """Run one invocation; its InvocationResponse (raises WorkerError when the worker is gone)."""
        rpc = self.rpc
        invocation_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._invocations[invocation_id] = (future, self._names.get(function_id, ""))
        try:
            self._send(
                rpc.StreamingMessage(
                    request_id=str(uuid.uuid4()),
                    invocation_request=rpc.InvocationRequest(
                        invocation_id=invocation_id,
                        function_id=function_id,
                        input_data=input_data,
                        trigger_metadata=dict(trigger_metadata or {}),
                    ),
                )
            )
            return await future
        finally:
            self._invocations.pop(invocation_id, None)

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while (payload := await frames.read_frame_async(stdout)) is not None:
                self._receive(self.rpc.StreamingMessage.FromString(payload))
        except (frames.FrameError, ConnectionError) as error:
            logger.error("the worker's message stream broke: %s", error)
        finally:
            self.exited.set()
            gone = WorkerError("the worker exited")
            for future in [*self._waiting.values(), *(f for f, _ in self._invocations.values()), self._started]:
                if not future.done():
                    future.set_exception(gone)
                    future.exception()  # retrieved here: nobody may be waiting for it any more

    def _receive(self, message: Any) -> None:
        kind = message.WhichOneof("content")
        if kind == "rpc_log":
            entry = self._invocations.get(message.rpc_log.invocation_id) if message.rpc_log.invocation_id else None
            route_log(message.rpc_log, entry[1] if entry else None, self.levels)
        elif kind == "start_stream":
            if not self._started.done():
                self._started.set_result(message.start_stream.worker_id)
        elif kind == "invocation_response":
            pending = self._invocations.get(message.invocation_response.invocation_id)
            if pending and not pending[0].done():
                pending[0].set_result(message.invocation_response)
        elif kind in self._waiting:
            future = self._waiting[kind]
            if not future.done():
                future.set_result(getattr(message, kind))
        else:
            logger.debug("unexpected message from the worker: %s", kind)

    async def stop(self) -> None:
        """Close the worker's input (it finishes what it has, then exits); terminate it if it does not."""
        if self.process.returncode is None:
            if self.process.stdin is not None and not self.process.stdin.is_closing():
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
