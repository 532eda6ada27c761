"""A small local host for the app's functions, for machines without Functions Core Tools.

It serves the HTTP functions the way the Functions host does (routes, ``routePrefix``,
function/admin keys, ``local.settings.json``, CORS) and runs other functions on demand
through ``POST /admin/functions/<name>``. It is a development tool: use ``func start``
where Core Tools is installed.

Programmatic use (tests)::

    from devhost.routing import function_table
    table = function_table(app)        # calls app.get_functions() once per app object
    table.http_routes                  # [HttpRoute(name, template, methods, auth_level)]
"""
