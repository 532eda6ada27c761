"""What the host reads besides the app: local.settings.json and host.json."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostSettings:
    route_prefix: str
    cors_origins: tuple[str, ...]
    cors_credentials: bool
    function_key: str | None
    master_key: str | None


def load_local_settings(app_dir: Path) -> dict:
    """Put local.settings.json Values into os.environ without overriding what is already set."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return {}
    document = json.loads(path.read_text(encoding="utf-8"))
    for name, value in (document.get("Values") or {}).items():
        os.environ.setdefault(name, "" if value is None else str(value))
    return document.get("Host") or {}


def read_route_prefix(app_dir: Path) -> str:
    path = app_dir / "host.json"
    if not path.exists():
        return "api"
    document = json.loads(path.read_text(encoding="utf-8"))
    prefix = document.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


def load_host_settings(app_dir: Path) -> HostSettings:
    host_section = load_local_settings(app_dir)
    cors = os.environ.get("DEVHOST_CORS")
    if cors is None:
        cors = str(host_section.get("CORS") or "")
    credentials = os.environ.get("DEVHOST_CORS_CREDENTIALS")
    if credentials is None:
        credentials = str(host_section.get("CORSCredentials", False))
    return HostSettings(
        route_prefix=read_route_prefix(app_dir),
        cors_origins=tuple(o.strip().rstrip("/") for o in cors.split(",") if o.strip()),
        cors_credentials=credentials.strip().lower() == "true",
        function_key=os.environ.get("DEVHOST_FUNCTION_KEY") or None,
        master_key=os.environ.get("DEVHOST_MASTER_KEY") or None,
    )
