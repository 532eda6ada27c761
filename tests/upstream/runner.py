"""Run Microsoft's azure-communication-identity client tests, unedited, live against a running emulator.

A separate pytest process, because their tests need their own rootdir (they import ``utils``, ``conftest`` and
``acs_identity_test_case`` as top-level modules) and an environment of their own: the live-test variables their
test case reads, trust in the emulator's certificate for both transports, and a managed identity (the emulator's)
for the tests that use ``DefaultAzureCredential``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from localdev.emulator_process import EmulatorProcess

HERE = Path(__file__).resolve().parent
CLIENT_TESTS = ("test_communication_identity_client.py", "test_communication_identity_client_async.py")
#: the Entra ID application (client) id their Teams tests send; any GUID, there is no tenant behind it
TEAMS_APP_ID = "0c8a59a5-0a5c-4e1b-9c37-4a1b2e0b7a11"


@dataclass
class UpstreamRun:
    returncode: int
    output: str
    outcomes: dict[str, dict[str, str]]

    def count(self) -> Counter[str]:
        return Counter(entry["outcome"] for entry in self.outcomes.values())

    def reasons(self, outcome: str) -> Counter[str]:
        return Counter(entry["reason"] for entry in self.outcomes.values() if entry["outcome"] == outcome)

    def summary(self) -> str:
        counts = self.count()
        lines = [f"Microsoft's azure-communication-identity client tests against the emulator: {dict(sorted(counts.items()))}"]
        for outcome in ("skipped", "never-run"):
            for reason, n in sorted(self.reasons(outcome).items()):
                lines.append(f"  {outcome} x{n}: {reason}")
        for nodeid, entry in sorted(self.outcomes.items()):
            if entry["outcome"] in ("failed", "error"):
                lines.append(f"  {entry['outcome']}: {nodeid}")
        return "\n".join(lines)


def live_environment(emulator: EmulatorProcess, home: Path, report: Path) -> dict[str, str]:
    """Only what the run needs: no Azure credentials of this machine can leak in (DefaultAzureCredential reads many)."""
    keep = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT") if name in os.environ}
    cert = str(emulator.cert_path)
    return keep | {
        "HOME": str(home),
        "PYTHONPATH": str(HERE / "stand_in"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "UPSTREAM_REPORT": str(report),
        # their test case's live mode (acs_identity_test_case.py), against the emulator
        "AZURE_TEST_RUN_LIVE": "true",
        "AZURE_SKIP_LIVE_RECORDING": "true",
        "COMMUNICATION_LIVETEST_DYNAMIC_CONNECTION_STRING": emulator.connection_string,
        "COMMUNICATION_M365_APP_ID": TEAMS_APP_ID,
        "SKIP_INT_IDENTITY_EXCHANGE_TOKEN_TEST": "false",  # run the Teams tests; those needing MSAL skip themselves
        # DefaultAzureCredential -> ManagedIdentityCredential (App Service protocol) -> the emulator's local issuer
        "IDENTITY_ENDPOINT": emulator.msi_endpoint,
        "IDENTITY_HEADER": emulator.identity_header,
        # the emulator's self-signed certificate: requests (sync) and aiohttp (async) read these at start
        "REQUESTS_CA_BUNDLE": cert,
        "SSL_CERT_FILE": cert,
    }


def run_client_tests(tests_dir: Path, emulator: EmulatorProcess, work: Path, timeout: float = 600.0) -> UpstreamRun:
    home, report = work / "home", work / "upstream-report.json"
    home.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        *(str(tests_dir / name) for name in CLIENT_TESTS),
        "-c",
        str(HERE / "upstream-pytest.ini"),
        "--rootdir",
        str(tests_dir),
        "-q",
        "-rfEs",
    ]
    result = subprocess.run(
        command,
        cwd=tests_dir,
        env=live_environment(emulator, home, report),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    outcomes = json.loads(report.read_text()) if report.exists() else {}
    return UpstreamRun(result.returncode, result.stdout + result.stderr, outcomes)
