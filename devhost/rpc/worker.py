"""``python -m devhost.rpc.worker``: the Python worker process around ``azure-functions-runtime``.

What the platform's proxy worker does for Python 3.13+ (Azure/azure-functions-python-worker,
``proxy_worker/dispatcher.py``; facts carried over, not code), with frames on stdin/stdout instead of
a gRPC stream (:mod:`devhost.rpc.frames`):

- it announces itself with ``StartStream``, then answers each host message on one event loop, one task
  per message: ``WorkerInitRequest``, ``FunctionsMetadataRequest``, ``FunctionLoadRequest`` and
  ``InvocationRequest`` go to the runtime's entry points of the same names, with the message in
  ``WorkerRequest.request`` and ``{"protos": <message classes>, "host": ...}`` in its ``properties``;
  ``WorkerStatusRequest`` is answered here;
- it owns the thread pool sync functions run in (``start_threadpool_executor``, sized by
  ``PYTHON_THREADPOOL_THREAD_COUNT``), and puts the app's folder on ``sys.path`` before indexing;
- once connected it sends every log record of the process to the host as ``RpcLog``, the root logger at
  INFO (DEBUG with ``PYTHON_ENABLE_DEBUG_LOGGING``), with the invocation id when the record was made
  during an invocation; the host decides what to show (``host.json``, see :mod:`devhost.rpc.logs`).

stdout carries only frames: the process's own stdout (``print`` in a function) is moved to stderr,
which the host relays, as the platform relays a worker's console output.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import logging
import os
import queue
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from devhost.rpc import frames, protos

logger = logging.getLogger("devhost.rpc.worker")
#: Loggers whose records the worker sends as System logs (the runtime's own, and this module's); the rest are User logs.
SYSTEM_LOGGERS = ("azure.functions", "azure_functions_runtime", "devhost.rpc")
#: The invocation a record belongs to, for logs from async functions (tasks inherit the context they are created in).
current_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_invocation", default=None)
_STOP = object()


@dataclass
class WorkerRequest:
    """What the runtime's entry points take: the host's message and what the worker adds to it."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


def is_system_logger(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in SYSTEM_LOGGERS)


def rpc_level(rpc: Any, levelno: int) -> int:
    """A Python log level as ``RpcLog.Level`` (Critical, Error, Warning, Information, Debug)."""
    for threshold, name in (
        (logging.CRITICAL, "Critical"),
        (logging.ERROR, "Error"),
        (logging.WARNING, "Warning"),
        (logging.INFO, "Information"),
        (logging.DEBUG, "Debug"),
    ):
        if levelno >= threshold:
            return int(getattr(rpc.RpcLog, name))
    return int(getattr(rpc.RpcLog, "None"))


class Outbox:
    """Frames to the host, written by one thread so that log records from any thread keep their order."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="devhost-worker-outbox", daemon=True)
        self._thread.start()

    def send(self, message: Any) -> None:
        self._queue.put(message)

    def _write(self) -> None:
        while (message := self._queue.get()) is not _STOP:
            try:
                self._stream.write(frames.encode(message.SerializeToString()))
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the host is gone: nothing left to tell it
                return

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=5)


class RpcLogHandler(logging.Handler):
    """Every record as an ``RpcLog`` message to the host."""

    def __init__(self, rpc: Any, outbox: Outbox, request_id: str) -> None:
        super().__init__()
        self._rpc, self._outbox, self._request_id = rpc, outbox, request_id

    def emit(self, record: logging.LogRecord) -> None:
        try:
            rpc = self._rpc
            category = rpc.RpcLog.RpcLogCategory.Value("System" if is_system_logger(record.name) else "User")
            log = rpc.RpcLog(
                level=rpc_level(rpc, record.levelno), message=self.format(record), category=record.name, log_category=category
            )
            invocation = invocation_of_record()
            if invocation:
                log.invocation_id = invocation
            self._outbox.send(rpc.StreamingMessage(request_id=self._request_id, rpc_log=log))
        except Exception:  # noqa: BLE001 - logging must never break the function that logs
            self.handleError(record)


def invocation_of_record() -> str | None:
    """The current invocation: this context's (async functions), else the runtime's (sync functions in its thread pool)."""
    invocation = current_invocation.get()
    if invocation:
        return invocation
    runtime = sys.modules.get("azure_functions_runtime")
    variable = getattr(runtime, "invocation_id_cv", None)
    value = variable.get() if variable is not None else None
    return str(value) if value else None


class Worker:
    """Dispatches the host's messages to the runtime, one task per message, and sends the answers back."""

    def __init__(self, rpc: Any, outbox: Outbox, worker_id: str, request_id: str) -> None:
        self.rpc, self.outbox = rpc, outbox
        self.worker_id, self.request_id = worker_id, request_id
        self.runtime: Any = None
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.outbox.send(
            self.rpc.StreamingMessage(request_id=self.request_id, start_stream=self.rpc.StartStream(worker_id=self.worker_id))
        )

    def dispatch(self, message: Any) -> None:
        kind = message.WhichOneof("content")
        token = current_invocation.set(message.invocation_request.invocation_id if kind == "invocation_request" else None)
        try:
            task = asyncio.get_running_loop().create_task(self._answer(kind, message), name=f"rpc:{kind}")
        finally:
            current_invocation.reset(token)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, kind: str | None, message: Any) -> None:
        rpc = self.rpc
        if kind == "worker_status_request":
            reply = rpc.StreamingMessage(request_id=message.request_id, worker_status_response=rpc.WorkerStatusResponse())
        elif kind == "worker_init_request":
            response = await self._init(message)
            reply = rpc.StreamingMessage(request_id=self.request_id, worker_init_response=response)
        elif kind == "functions_metadata_request":
            response = await self.runtime.functions_metadata_request(WorkerRequest("WorkerMetadataRequest", message))
            reply = rpc.StreamingMessage(request_id=message.request_id, function_metadata_response=response)
        elif kind == "function_load_request":
            response = await self.runtime.function_load_request(WorkerRequest("FunctionsLoadRequest", message))
            reply = rpc.StreamingMessage(request_id=self.request_id, function_load_response=response)
        elif kind == "invocation_request":
            response = await self.runtime.invocation_request(WorkerRequest("WorkerInvRequest", message))
            reply = rpc.StreamingMessage(request_id=self.request_id, invocation_response=response)
        else:  # like the proxy worker: never crash on a message it does not know
            logger.error("unknown StreamingMessage content: %s", kind)
            return
        self.outbox.send(reply)

    async def _init(self, message: Any) -> Any:
        directory = message.worker_init_request.function_app_directory
        if directory:
            if directory not in sys.path:
                sys.path.insert(0, directory)
            os.chdir(directory)
        # Imported after the app's folder is on sys.path, as the proxy worker imports it (Python 3.13+ only).
        self.runtime = importlib.import_module("azure_functions_runtime")
        self.runtime.start_threadpool_executor()
        properties = {"protos": self.rpc, "host": "127.0.0.1"}
        return await self.runtime.worker_init_request(WorkerRequest("WorkerInitRequest", message, properties))

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.stop_threadpool_executor()


def _read_messages(stream: BinaryIO, rpc: Any, loop: asyncio.AbstractEventLoop, worker: Worker, done: asyncio.Event) -> None:
    """Reader thread: each frame from the host becomes a task on the loop; end of stream stops the worker."""
    try:
        while (payload := frames.read_frame(stream)) is not None:
            message = rpc.StreamingMessage.FromString(payload)
            loop.call_soon_threadsafe(worker.dispatch, message)
    except frames.FrameError as error:
        print(f"devhost worker: {error}", file=sys.stderr, flush=True)
    finally:
        loop.call_soon_threadsafe(done.set)


async def serve(frames_in: BinaryIO, frames_out: BinaryIO) -> None:
    rpc = protos.load()
    outbox = Outbox(frames_out)
    worker = Worker(rpc, outbox, worker_id=os.environ.get("DEVHOST_WORKER_ID") or str(uuid.uuid4()), request_id=str(uuid.uuid4()))
    root = logging.getLogger()
    debug = os.environ.get("PYTHON_ENABLE_DEBUG_LOGGING", "").strip().lower() in ("1", "true")
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = RpcLogHandler(rpc, outbox, worker.request_id)
    root.addHandler(handler)
    done = asyncio.Event()
    worker.start()
    reader = threading.Thread(
        target=_read_messages,
        args=(frames_in, rpc, asyncio.get_running_loop(), worker, done),
        name="devhost-worker-inbox",
        daemon=True,
    )
    reader.start()
    try:
        await done.wait()
        if worker.tasks:
            await asyncio.wait(worker.tasks, timeout=10)
    finally:
        root.removeHandler(handler)
        worker.close()
        outbox.close()


def main() -> int:
    # The host decides when the worker ends (it closes the worker's stdin): Ctrl-C in a terminal reaches the whole
    # process group, and the worker must not die under the host's feet while the host shuts down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in a function goes to stderr, which the host relays; stdout is frames only
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    try:
        asyncio.run(serve(sys.stdin.buffer, frames_out))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
