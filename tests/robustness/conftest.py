"""Robustness tests reuse the API tests' stand-ins: Azurite, the ACS emulator and devhost apps on free loopback ports."""

from __future__ import annotations

from tests.api.conftest import app_factory, azurite, emulator  # noqa: F401 - fixtures, shared by name

#: Hypothesis settings every robustness test shares: bounded, no deadline (loopback I/O on a shared
#: machine), and no example database written into the work tree.
HYPOTHESIS_COMMON = {"deadline": None, "database": None}
