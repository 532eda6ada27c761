"""python -m devhost [--host 127.0.0.1] [--port 7071] [--app function_app:app] [--app-dir .]"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from devhost.routing import function_table
from devhost.server import create_web_app
from devhost.settings import load_host_settings


async def serve(args: argparse.Namespace) -> None:
    app_dir = Path(args.app_dir).resolve()
    settings = load_host_settings(app_dir)  # before importing the app: it may read settings at import
    sys.path.insert(0, str(app_dir))
    module_name, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    table = function_table(app)

    runner = web.AppRunner(create_web_app(table, settings), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the real port when --port 0
    base = f"http://{args.host}:{port}"
    log = logging.getLogger("devhost")
    log.info("Functions (devhost; use `func start` where Core Tools is installed):")
    for route in table.http_routes:
        methods = ",".join(route.methods) if route.methods else "*"
        prefix = f"/{settings.route_prefix}" if settings.route_prefix else ""
        log.info("  %s: [%s] %s%s/%s (%s)", route.name, methods, base, prefix, route.template, route.auth_level)
    for other in table.others.values():
        log.info("  %s: %s, run with POST %s/admin/functions/%s", other.name, other.trigger_type, base, other.name)
    enforced = [level for level, key in (("function", settings.function_key), ("admin", settings.master_key)) if key]
    log.info("Keys enforced for: %s", ", ".join(enforced) or "nothing (as Core Tools locally)")
    print(f"DEVHOST_URL={base}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Serve the app's functions locally.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app", default="function_app:app")
    parser.add_argument("--app-dir", default=".")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
