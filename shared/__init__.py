"""The ACS trusted token service: everything ``function_app.py`` registers, in four layers.

Read from the bottom up; each layer imports only the ones below it (``make check`` enforces
this with import-linter, see ``pyproject.toml``):

``shared.functions``
    The Azure Functions layer, the only one that imports ``azure.functions``: Blueprints of
    the token API, the operator API and the revocation triggers, the HTTP wrapper (methods,
    JSON bodies, errors as status codes, one log line per request).
``shared.composition``
    The composition root: :class:`~shared.composition.Services` builds every client of a worker
    once, from app settings, and closes them together.
``shared.adapters``
    The outside world behind the domain's interfaces: ACS (the official SDK), Table and Queue
    storage, callers' credentials (JWT, Easy Auth, dev), Application Insights.
``shared.settings``
    App settings parsed and validated into typed values; every error names the setting.
``shared.domain``
    The service's decisions, with no SDK and no ``azure.functions``: the token service, what a
    caller may ask for, per-user limits, the revocation sweep's planning, pacing and budget, the
    errors every layer speaks, and the interfaces (``shared.domain.ports``) adapters implement.
"""
