"""The emulator as the official JavaScript SDKs call it (Node backends, and the token credential of frontends)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support import run_for_json

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "identity_roundtrip.cjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is required (make test installs the JS SDKs with npm)")
def test_javascript_sdk_every_operation(emulator):
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(emulator.cert_path), "NODE_PATH": str(ROOT / "node_modules")}
    answer = run_for_json(["node", str(SCRIPT), emulator.connection_string], env)
    assert answer["user"].startswith("8:acs:")
    assert emulator.validate(answer["token"])["reason"] == "revoked"  # revokeTokens ran after it was issued
    assert emulator.validate(answer["chatToken"])["reason"] == "identity_deleted"
    assert answer["deletedStatus"] == 404 and answer["badScopeStatus"] == 400
    # AzureCommunicationTokenCredential decoded the token's expiry (standard base64 of the payload)
    assert abs(answer["parsedExpiresOnTimestamp"] / 1000 - (time.time() + 3600)) < 120
