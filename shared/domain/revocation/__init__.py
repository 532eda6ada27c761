"""Revocation: durable requests, the paced sweep, and its queue fan-out, as decisions.

``work`` (what one unit of work is, and the policies' cut-offs), ``pacing`` (staying
under ACS's per-resource ceiling), ``execution`` (carrying out a request: the one flow
the token service and the sweep share), ``processor`` (one item with retries and
deferral), ``sweep`` (planning, budget, fan-out).
"""
