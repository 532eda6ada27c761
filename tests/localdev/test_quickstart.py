"""make quickstart: the seed's output shape, against an emulator it starts and stops itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SHAPE = re.compile(
    r"\AAzure Communication Services - Access Tokens Quickstart\n"
    r"\nCreated an identity: (?P<id>8:acs:[0-9a-f-]+_[0-9a-f-]+)\n"
    r"\nIssued an access token with 'voip' scope that expires at \d\d/\d\d/\d\d \d\d:\d\d \d\d [AP]M:\n"
    r"(?P<sig>[A-Za-z0-9_-]{12})\.\.\. \(signature of a \d+-character token, elided\)\n"
    r"\nSuccessfully revoked all access tokens for identity with ID: (?P=id)\n"
    r"\nDeleted the identity with ID: (?P=id)\n\Z"
)


def test_quickstart_prints_the_seed_shape_and_never_a_whole_token():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_")}
    result = subprocess.run(
        [sys.executable, "-m", "localdev.quickstart"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert SHAPE.match(result.stdout), result.stdout
    assert "eyJ" not in result.stdout  # no JWT header or payload
