"""The Azure Functions layer: the only package that imports ``azure.functions``.

``token_api``, ``operator_api`` and ``revocation_triggers`` each build a Blueprint from
the worker's :class:`~shared.composition.Services`; ``function_app.py`` registers them.
``http`` is the wrapper every HTTP function shares; ``bodies`` reads JSON request bodies.
"""
