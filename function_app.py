"""Azure Functions entry point: the ACS trusted token service's functions, in three Blueprints.

* ``token_api``: what frontends call (``/api/token``, ``/token/refresh``, ``/token/revoke``,
  ``/token/teams``, ``/identity``, ``/health``); the app authenticates callers itself
  (``AUTH_MODE``), so these routes are anonymous at the host level.
* ``operator_api``: ``/api/ops/...`` behind the host's function key.
* ``revocation_triggers``: the revocation sweep's timer and queue triggers.

``services`` is the composition root: it builds every client of this worker once, on
first use, from app settings (see ``shared/__init__.py`` for the layers).
"""

from __future__ import annotations

import azure.functions as func

from shared.composition import Services
from shared.functions.operator_api import operator_api
from shared.functions.revocation_triggers import revocation_triggers
from shared.functions.token_api import token_api


def create_app(services: Services) -> func.FunctionApp:
    """The app's functions over ``services`` (benchmarks and tests build their own around other settings)."""
    function_app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    function_app.register_functions(token_api(services))
    function_app.register_functions(operator_api(services))
    function_app.register_functions(revocation_triggers(services))
    return function_app


services = Services.from_environment()
app = create_app(services)
