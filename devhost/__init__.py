"""A small local host for the app's functions, for machines without Functions Core Tools.

It serves the HTTP functions the way the Functions host does (routes under
``host.json`` ``extensions.http.routePrefix``, route parameters and constraints,
function/admin keys, ``local.settings.json``, CORS) and runs other functions, such
as timers, on demand through ``POST /admin/functions/<name>``. It is a development
tool: use ``func start`` where Core Tools is installed.

Where the functions run: on Python 3.13+ (with ``azure-functions-runtime`` installed, as
requirements.txt has it) inside Microsoft's Functions Python runtime, in a worker process devhost
starts and drives with the Functions host's messages (``devhost.rpc``); devhost keeps the host's jobs.
Elsewhere, or with ``DEVHOST_WORKER=direct``, devhost imports the app and calls the functions itself.

Command line::

    python -m devhost [--host 127.0.0.1] [--port 7071] [--app function_app:app] [--app-dir .]

``--port 0`` picks a free port; once listening it prints one line to stdout,
``DEVHOST_URL=http://127.0.0.1:PORT``. Keys are enforced only when configured:
``DEVHOST_FUNCTION_KEY`` (function level) and ``DEVHOST_MASTER_KEY`` (admin level and
the admin API), given as ``x-functions-key`` or ``?code=``. CORS comes from
``local.settings.json`` ``Host.CORS``/``Host.CORSCredentials`` or ``DEVHOST_CORS``/
``DEVHOST_CORS_CREDENTIALS`` (``*`` with credentials is refused at start-up, as Azure refuses it).
It has the Functions host's request limits: request line 8 KiB, headers 32 KiB in total and at
most 100, body ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` bytes (100 MB by default); see
``devhost.limits``. A request over them, or malformed, gets a short JSON 414/431/413/400 and one
log line that quotes nothing from it.

Programmatic use (tests)::

    import function_app
    from devhost import HostSettings, build_routes, function_table, start_server

    routes = build_routes(function_app.app, "api")   # list[Route], most specific first
    {(r.name, r.path, r.methods, r.auth_level) for r in routes}
    # e.g. ("health", "/api/health", ("GET",), "anonymous"); methods None means every method
    function_table(function_app.app).others          # non-HTTP functions by name

    running = await start_server(function_app.app, HostSettings(route_prefix="api"))  # 127.0.0.1, free port
    running.url                                        # "http://127.0.0.1:PORT"
    await running.stop()

``app.get_functions()`` can be called only once per app object; ``build_routes``,
``function_table`` and ``create_server`` share one cached table per app, so call
them as often as needed, but do not call ``app.get_functions()`` yourself in the
same process.
"""

from devhost.routing import FunctionTable, HttpRoute, OtherFunction, Route, build_routes, function_table, routes_for
from devhost.server import RunningHost, create_server, start_server
from devhost.settings import HostSettings, HostSettingsError, load_host_settings, read_route_prefix

__all__ = [
    "FunctionTable",
    "HostSettings",
    "HostSettingsError",
    "HttpRoute",
    "OtherFunction",
    "Route",
    "RunningHost",
    "build_routes",
    "create_server",
    "function_table",
    "load_host_settings",
    "read_route_prefix",
    "routes_for",
    "start_server",
]
