"""Revocation: durable requests, the timer-triggered sweep and its queue fan-out.

Modules: ``ledger`` (requests and status in Table storage), ``pacing`` (staying
under ACS's rate ceiling), ``work`` (one idempotent unit of work), ``sweep``
(planning, budgeted processing, fan-out), ``fanout`` (the queue), ``runtime``
(clients created once per worker), ``api`` (the operators' HTTP endpoints).
"""
