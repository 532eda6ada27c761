"""Shared settings for property tests (hypothesis)."""

from __future__ import annotations

#: Bounded, no deadline (loopback I/O on a shared machine), and no example database written into the work tree.
HYPOTHESIS_COMMON = {"deadline": None, "database": None}
