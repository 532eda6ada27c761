"""Raw, correctly signed HTTP calls to an emulator, to look at exactly what it answers (status, headers, body)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import urlparse

import jwt
import requests

from localdev.emulator_process import EmulatorProcess

API = "api-version=2023-10-01"
FOREIGN_ID = "8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000"
TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"


@dataclass
class Answer:
    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: Any

    @property
    def error(self) -> dict[str, Any]:
        return dict(self.body["error"])


def call(
    emulator: EmulatorProcess, method: str, path: str, payload: Any = None, *, headers: dict[str, str] | None = None
) -> Answer:
    """``method path`` with an HMAC signature made as the SDKs make it; ``payload`` is sent as JSON unless None."""
    body = b"" if payload is None else json.dumps(payload).encode()
    url = f"{emulator.endpoint}{path}"
    date = formatdate(usegmt=True)
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    to_sign = f"{method}\n{path}\n{date};{urlparse(url).netloc};{digest}"
    signature = base64.b64encode(
        hmac.new(base64.b64decode(emulator.access_key), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    signed = {
        "x-ms-date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}",
        "Content-Type": "application/json",
    }
    response = requests.request(
        method, url, data=body or None, headers=signed | (headers or {}), verify=str(emulator.cert_path), timeout=10
    )
    return Answer(response.status_code, response.headers, response.json() if response.content else None)


def create_identity(emulator: EmulatorProcess) -> str:
    answer = call(emulator, "POST", f"/identities?{API}")
    assert answer.status == 201, answer.body
    return str(answer.body["identity"]["id"])


def teams_token(oid: str, app_id: str, **overrides: Any) -> str:
    """An Entra ID token's claims as ACS reads them (the emulator does not check the signature: there is no Entra here)."""
    claims = {"aud": TEAMS_AUDIENCE, "oid": oid, "appid": app_id, "exp": int(time.time()) + 3600} | overrides
    return jwt.encode(claims, "not-checked-by-the-emulator-at-all", algorithm="HS256")
