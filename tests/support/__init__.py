"""What tests share: stand-in fixtures, app processes, fakes, issuers, paths. Never import from a ``conftest``."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (where function_app.py is).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Only the identity map's own rows: its partitions are two hex digits; the reverse index's start with "i".
MAPPING_ROWS = "PartitionKey lt 'i'"
