"""The domain layer: decisions only; no Azure SDK, no ``azure.functions``, no I/O of its own.

Everything it needs from the outside world comes through the interfaces in
:mod:`shared.domain.ports`, so it runs in unit tests against in-memory fakes.
"""
