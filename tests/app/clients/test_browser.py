"""The web sample in headless Chromium against the app, Azurite and the ACS emulator (dev auth).

The page (samples/web) is served from its own loopback origin, the API from another, so CORS is
real. browser_e2e.cjs drives it and stops at checkpoints; at each one this test asks the emulator
about the tokens the page shows (before "sign out everywhere" revokes them). It keeps a screenshot.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import struct
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from localdev.processes import close_pipes
from tests.support.clients import CLIENTS_DIR, ROOT, await_count, count_requests, node_env, requires_node

pytestmark = pytest.mark.browser

SCRIPT = CLIENTS_DIR / "browser_e2e.cjs"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOT_COPY = ROOT / ".local" / "screenshots" / "web-sample.png"
STEP_TIMEOUT = 90  # seconds for one checkpoint (Chromium's first start included)

requires_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is missing: run scripts/install-chromium.sh (make test does)"
)


class BrowserDriver:
    """The Node driver as a subprocess: read its checkpoint lines, tell it to go on; every wait bounded."""

    def __init__(self, config: dict) -> None:
        self.process = subprocess.Popen(
            ["node", str(SCRIPT), json.dumps(config)],
            cwd=ROOT,
            env=node_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, name: str) -> dict:
        """The next checkpoint, which must be ``name``."""
        while True:
            try:
                line = self.lines.get(timeout=STEP_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"browser driver: no {name!r} within {STEP_TIMEOUT}s\n{''.join(self.stderr)[-3000:]}")
            if line is None:
                self.process.wait(timeout=10)
                pytest.fail(f"browser driver ended before {name!r}:\n{''.join(self.stderr)[-4000:]}")
            if line.startswith("{"):
                message = json.loads(line)
                assert message.get("checkpoint") == name, message
                return message

    def go_on(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> int | None:
        """The exit code; closing stdin ends a driver still waiting at a checkpoint (after a failed assert)."""
        try:
            self.process.stdin.close()
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()  # our own child only; Playwright's Chromium dies with its pipe
            self.process.wait(timeout=10)
            return None
        finally:
            if self.process.poll() is not None:
                close_pipes(self.process)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header; fails on anything that is not a PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


@requires_node
@requires_chromium
def test_web_sample_in_chromium(app_factory, emulator, sample_site, tmp_path) -> None:
    app = app_factory(DEVHOST_CORS=sample_site)  # only the sample's origin is allowed
    api_base = f"{app.url}/api"
    user = f"web-{uuid.uuid4().hex[:12]}"
    screenshot = tmp_path / "web-sample.png"
    driver = BrowserDriver(
        {"pageUrl": sample_site, "apiBase": api_base, "user": user, "screenshot": str(screenshot), "executablePath": CHROMIUM}
    )
    try:
        # signed in: the page shows the identity, scopes, expiry, and the token the credential holds
        signed_in = driver.expect("signed-in")["signedIn"]
        assert signed_in["apiBaseField"] == api_base
        assert signed_in["userId"].startswith("8:acs:")
        assert signed_in["scopes"] == "chat, voip"
        assert signed_in["status"] == f"Signed in as {user}."
        assert "min" in signed_in["expiresIn"]
        first_token = signed_in["token"]
        assert emulator.validate(first_token)["valid"] is True
        driver.go_on()

        # the credential's own proactive refresh, then a forced one: new tokens, valid in the emulator
        refreshed = driver.expect("refreshed")
        proactive, manual = refreshed["proactive"], refreshed["manual"]
        assert proactive["lastRefresh"].startswith("automatic")
        assert manual["lastRefresh"].startswith("manual") and manual["status"] == "Got a new token."
        assert len({first_token, proactive["token"], manual["token"]}) == 3
        assert emulator.validate(proactive["token"])["valid"] is True
        assert emulator.validate(manual["token"])["valid"] is True
        assert await_count(app, "POST", "/api/token/refresh", 200, at_least=2) == 2
        driver.go_on()

        # sign out everywhere: every token issued so far is revoked
        signed_out = driver.expect("signed-out")["signedOut"]
        assert signed_out["sessionHidden"] is True
        assert signed_out["status"].startswith("Signed out everywhere")
        for token in (first_token, proactive["token"], manual["token"]):
            verdict = emulator.validate(token)
            assert (verdict["valid"], verdict.get("reason")) == (False, "revoked")
        assert await_count(app, "POST", "/api/token/revoke", 204, at_least=1) == 1
        driver.go_on()

        done = driver.expect("done")
    finally:
        exit_code = driver.finish()
    assert exit_code == 0, "".join(driver.stderr)[-3000:]

    assert done["pageOrigin"] == sample_site != app.url  # really cross-origin
    assert done["pageErrors"] == []
    # the only console errors: Chromium's own line for the deliberate 400 (no CORS blocks, no 404s)
    assert all("status of 400" in line for line in done["consoleErrors"]), done["consoleErrors"]
    # the service's own error, shown to the person: no scope ticked -> 400 invalid_scopes
    assert "invalid_scopes" in done["errorText"] and "HTTP 400" in done["errorText"]
    # CORS was exercised: preflights answered, and the page's calls got through
    assert count_requests(app, "OPTIONS", "/api/token", 204) >= 1
    assert count_requests(app, "OPTIONS", "/api/token/refresh", 204) >= 1
    calls = [(call["method"], call["url"].removeprefix(api_base), call["status"]) for call in done["apiCalls"]]
    assert ("POST", "/token", 200) in calls and ("POST", "/token/revoke", 204) in calls

    # a screenshot of the signed-in page (after the forced refresh), kept for people
    width, height = png_size(screenshot)
    assert width >= 800 and height >= 600
    assert screenshot.stat().st_size > 20_000
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
