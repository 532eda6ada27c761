"""``make run``: the whole service on this machine, no Azure account needed.

Starts what the settings do not already point elsewhere, all on loopback:
Azurite (Table + Queue storage) when ``AzureWebJobsStorage`` is the development
storage, the ACS Identity emulator when neither ``ACS_CONNECTION_STRING`` nor
``ACS_ENDPOINT`` is set, then the app on 127.0.0.1:7071 with Functions Core
Tools (``func start``) when it is installed, else with ``devhost``. Ctrl-C stops
everything it started. Environment variables win over local.settings.json.

``LOCALDEV_HOST`` (default 127.0.0.1) is where devhost listens; ``func start`` always
listens on every interface. What that leaves open is printed as warnings first
(``localdev.exposure``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCAL_SETTINGS = ROOT / "local.settings.json"
SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"
STATE_DIR = ROOT / ".local"
APP_PORT = 7071
DEFAULT_HOST = "127.0.0.1"
EMULATOR_PORT = 8443
AZURITE_TABLE_PORT = 10002
AZURITE_QUEUE_PORT = 10001
AZURITE_BLOB_PORT = 10000  # the timer's singleton lock is a blob lease, as on the Functions host
DEV_STORAGE = ("usedevelopmentstorage=true", "")


def ensure_local_settings() -> dict[str, Any]:
    """Create local.settings.json from the sample on first run; return its Values.

    Settings added to the sample since the file was created are filled in from the sample
    (a timer whose ``%REVOCATION_SCHEDULE%`` is missing would stop the host from starting).
    """
    if not LOCAL_SETTINGS.exists():
        shutil.copyfile(SAMPLE_SETTINGS, LOCAL_SETTINGS)
        print(f"Created {LOCAL_SETTINGS.name} from the sample (it is git-ignored; edit it freely).", file=sys.stderr)
    values = json.loads(LOCAL_SETTINGS.read_text(encoding="utf-8")).get("Values", {})
    sample = json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8")).get("Values", {})
    missing = sorted(name for name in sample if name not in values)
    if missing:
        print(f"{LOCAL_SETTINGS.name} lacks {', '.join(missing)}: using the sample's values.", file=sys.stderr)
    return {**{name: sample[name] for name in missing}, **values}


def effective(values: dict[str, Any], name: str) -> str:
    """A setting as the app will see it: the environment wins over local.settings.json."""
    return (os.environ.get(name) or str(values.get(name) or "")).strip()


def main() -> int:
    from localdev.azurite import start_azurite
    from localdev.emulator_process import start_emulator
    from localdev.exposure import exposure_warnings

    values = ensure_local_settings()
    env = dict(os.environ)
    for name, value in values.items():  # what local.settings.json lacks, from the sample; the environment wins
        env.setdefault(name, str(value))
    with ExitStack() as stack:
        if effective(values, "AzureWebJobsStorage").lower() in DEV_STORAGE:
            azurite = stack.enter_context(
                start_azurite(
                    table_port=AZURITE_TABLE_PORT,
                    queue_port=AZURITE_QUEUE_PORT,
                    blob_port=AZURITE_BLOB_PORT,
                    location=STATE_DIR / "azurite",
                )
            )
            env["AzureWebJobsStorage"] = azurite.connection_string
            print(f"Azurite (Blob, Queue, Table) on {azurite.table_endpoint}", file=sys.stderr)
        if not (effective(values, "ACS_CONNECTION_STRING") or effective(values, "ACS_ENDPOINT")):
            emulator = stack.enter_context(start_emulator("--port", str(EMULATOR_PORT), cert_dir=STATE_DIR / "emulator"))
            env["ACS_CONNECTION_STRING"] = emulator.connection_string
            env["ACS_CA_BUNDLE"] = str(emulator.cert_path)
            print(f"ACS Identity emulator on {emulator.endpoint}", file=sys.stderr)

        core_tools = shutil.which("func") is not None
        listen_host = os.environ.get("LOCALDEV_HOST", "").strip() or DEFAULT_HOST
        if core_tools:
            command = ["func", "start", "--port", str(APP_PORT)]
        else:
            command = [sys.executable, "-m", "devhost", "--host", listen_host, "--port", str(APP_PORT)]
            env.setdefault("DEVHOST_RUN_TRIGGERS", "true")  # the revocation timer and queue run by themselves
        for warning in exposure_warnings(listen_host, core_tools, lambda name: effective(values, name)):
            print(f"\n{warning}", file=sys.stderr)
        host = subprocess.Popen(command, cwd=ROOT, env=env)
        print(
            f"\nToken service: http://127.0.0.1:{APP_PORT}/api  (try: curl http://127.0.0.1:{APP_PORT}/api/health)\n"
            "Press Ctrl-C to stop the app and everything started for it.\n",
            file=sys.stderr,
        )

        # Ctrl-C (SIGINT) or SIGTERM: stop the host, then the ExitStack stops the stand-ins.
        def stop_host(*_: object) -> None:
            if host.poll() is None:
                host.terminate()

        signal.signal(signal.SIGINT, stop_host)
        signal.signal(signal.SIGTERM, stop_host)
        code = host.wait()
        print("Stopping the local stand-ins...", file=sys.stderr)
        return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


if __name__ == "__main__":
    sys.exit(main())
