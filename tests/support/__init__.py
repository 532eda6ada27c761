"""What tests share: stand-in fixtures, app processes, fakes, issuers, paths. Never import from a ``conftest``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The repository's root (where function_app.py is).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Only the identity map's own rows: its partitions are two hex digits; the reverse index's start with "i".
MAPPING_ROWS = "PartitionKey lt 'i'"


def run_for_json(command: list[str], env: Mapping[str, str], *, timeout: float = 60) -> Any:
    """Run a script from the repo root in a process of its own and return the JSON it printed.

    A failing script fails the test with the end of its stderr, not with a JSON decoding error.
    """
    result = subprocess.run(command, cwd=REPO_ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)
