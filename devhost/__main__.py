"""python -m devhost [--host 127.0.0.1] [--port 7071] [--app function_app:app] [--app-dir .]

Prints exactly one line to stdout once listening: ``DEVHOST_URL=http://HOST:PORT``.
Everything else (function list, access log, errors) goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from devhost.routing import HttpRoute, OtherFunction, function_table, routes_for
from devhost.rpc.channel import WorkerError
from devhost.server import HttpInvoker, start_server
from devhost.settings import HostSettings, HostSettingsError, load_host_settings, worker_mode
from devhost.triggers import start_background_triggers

log = logging.getLogger("devhost")


def load_app(spec: str, app_dir: Path) -> Any:
    """Import ``module:attr`` (default attr ``app``) with ``app_dir`` first on sys.path."""
    sys.path.insert(0, str(app_dir))
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def describe(app: Any, settings: HostSettings, base: str, listen_host: str = "127.0.0.1", runs_in: str = "") -> None:
    """The function list, like `func start`, and which key levels are enforced (stderr)."""
    table = function_table(app)
    lines = ["", "Functions (devhost; use `func start` where Core Tools is installed):", ""]
    if runs_in:
        lines[1:2] = [lines[1], f"Functions run {runs_in}"]
    routes = routes_for(table, settings.route_prefix)
    for route in sorted(routes, key=lambda r: r.name.lower()):
        methods = ",".join(route.methods) if route.methods else "*"
        lines.append(f"        {route.name}: [{methods}] {base}{route.path} ({route.auth_level})")
    for other in table.others.values():
        lines.append(f"        {other.name}: {other.trigger_type}, run with POST {base}/admin/functions/{other.name}")
    functions: list[HttpRoute | OtherFunction] = [*routes, *table.others.values()]
    for fn in functions:
        if fn.param_name not in inspect.signature(fn.function).parameters:  # the real host refuses to index it
            lines.append(f"  WARNING {fn.name}: the trigger's arg_name '{fn.param_name}' is not a parameter of the function")
    enforced = settings.enforced_levels()
    lines += ["", "Keys enforced for: " + (", ".join(enforced) if enforced else "nothing (as Core Tools locally)")]
    if settings.cors_origins:
        lines.append(
            "CORS origins: " + ", ".join(settings.cors_origins) + (" (with credentials)" if settings.cors_credentials else "")
        )
    lines.append(f"Request body limit: {settings.max_request_body_bytes} bytes (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT)")
    if not _is_loopback(listen_host):
        unchecked = "" if len(enforced) == 2 else " Function or admin keys are not set: those functions take anyone."
        lines.append(f"WARNING: listening on {listen_host}, so other machines can call these functions.{unchecked}")
    print("\n".join(lines) + "\n", file=sys.stderr, flush=True)


async def _stop_when_worker_exits(exited: asyncio.Event, stop: asyncio.Event, died: asyncio.Event) -> None:
    await exited.wait()
    if not stop.is_set():  # not on its way out because devhost stops: it died
        log.error("the functions' worker process exited; devhost stops")
        died.set()
        stop.set()


async def serve(args: argparse.Namespace) -> None:
    app_dir = Path(args.app_dir).resolve()  # noqa: ASYNC240 - once, before the server starts
    settings = load_host_settings(app_dir)  # before importing the app: it may read settings at import
    runtime = None
    http_invoker: HttpInvoker | None = None
    if worker_mode(os.environ) == "runtime":  # the worker imports and indexes the app; this process never does
        from devhost.rpc.functions import start_runtime_functions

        module = args.app.partition(":")[0]
        if module != "function_app":
            os.environ.setdefault("PYTHON_SCRIPT_FILE_NAME", f"{module}.py")
        runtime = await start_runtime_functions(str(app_dir))
        app: Any = runtime.table
        http_invoker = runtime.invoke_http
        runs_in = (
            f"inside azure-functions-runtime {_version('azure-functions-runtime')}, worker pid {runtime.channel.process.pid}"
        )
    else:
        app = load_app(args.app, app_dir)
        runs_in = f"in devhost's process (Python {sys.version.split()[0]}; DEVHOST_WORKER=direct)"
    try:
        port = args.port if args.port is not None else settings.local_http_port
        running = await start_server(app, settings, args.host, port, http_invoker)  # --port 0: a free port, shown in the URL
        try:
            describe(app, settings, running.url, args.host, runs_in)
            print(f"DEVHOST_URL={running.url}", flush=True)

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            died = asyncio.Event()
            watcher = asyncio.create_task(_stop_when_worker_exits(runtime.channel.exited, stop, died)) if runtime else None
            background = []
            if os.environ.get("DEVHOST_RUN_TRIGGERS", "").lower() in ("1", "true", "yes", "on"):
                background = start_background_triggers(function_table(app), stop)
            await stop.wait()
            log.info("devhost stopping")
            if watcher is not None:
                watcher.cancel()
                background.append(watcher)
            await asyncio.gather(*background, return_exceptions=True)
            if died.is_set():
                raise WorkerError("the functions' worker process exited")
        finally:
            await running.stop()
    finally:
        if runtime is not None:
            await runtime.channel.stop()


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(unknown version)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Serve the app's functions locally.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: Host.LocalHttpPort or 7071; 0 picks a free port")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the func.FunctionApp")
    parser.add_argument("--app-dir", default=".", help="where function_app.py, host.json and local.settings.json are")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args))
    except HostSettingsError as error:  # a setting the real host refuses: say which, start nothing
        log.error("devhost cannot start: %s", error)
        return 2
    except WorkerError as error:  # the worker could not start, index or load the app, or died
        log.error("devhost stopped: %s", error)
        return 3
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
