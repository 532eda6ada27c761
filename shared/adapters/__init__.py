"""Adapters: the outside world behind the domain's interfaces (``shared.domain.ports``).

Each module owns one SDK: ``acs`` (azure-communication-identity), ``storage`` (the Table and
Queue client factory, credentials, retries, create-once), ``identity_map``, ``ledger`` and
``fanout`` (Azure Storage), ``auth`` (callers' credentials), ``telemetry`` (Application
Insights). SDK exceptions are translated into :mod:`shared.domain.errors` here and never
travel further. Every client is an async context manager (``async with``) with ``close()``.
"""
