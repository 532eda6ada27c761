"""What the host reads besides the app: ``local.settings.json`` and ``host.json``.

``local.settings.json`` ``Values`` go into ``os.environ`` (the environment wins), and
must be loaded before the app module is imported: apps read settings at import.

Settings the real host would refuse are refused here too, at start-up (``HostSettingsError``):
CORS for any origin (``*``) together with credentials, and a negative body limit.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.limits import BODY_LIMIT_SETTING, DEFAULT_MAX_REQUEST_BODY_BYTES, BodyLimitError, parse_body_limit

DEFAULT_PORT = 7071
logger = logging.getLogger("devhost")

#: Why ``*`` with credentials is refused. Azure refuses ``supportCredentials`` while the allowed
#: origins include ``*`` (Microsoft Learn, "Tutorial: Host a RESTful API with CORS in Azure App
#: Service", section on ACCESS-CONTROL-ALLOW-CREDENTIALS), and the Functions host builds its CORS
#: policy with ASP.NET Core's CorsPolicyBuilder (Azure/azure-functions-host,
#: ``src/WebJobs.Script.WebHost/Configuration/CorsOptionsSetup.cs``), whose ``Build()`` throws for
#: any origin with credentials (dotnet/aspnetcore, ``src/Middleware/CORS/src/Infrastructure/CorsPolicyBuilder.cs``).
CORS_WILDCARD_WITH_CREDENTIALS = (
    "CORS allows any origin (*) together with credentials, which Azure and the Functions host refuse: "
    "any web page could then call the API with the user's cookies or credentials. "
    "List the origins instead (Host.CORS or DEVHOST_CORS), "
    "or turn credentials off (Host.CORSCredentials, DEVHOST_CORS_CREDENTIALS)."
)


class HostSettingsError(ValueError):
    """A host setting the real host would refuse; the message names the setting, never a secret."""


@dataclass(frozen=True)
class HostSettings:
    route_prefix: str = "api"  # host.json extensions.http.routePrefix, no slashes; "" for none
    cors_origins: tuple[str, ...] = ()  # empty: CORS off; ("*",): any origin
    cors_credentials: bool = False
    function_key: str | None = None  # None: function level not enforced (as Core Tools locally)
    master_key: str | None = None  # None: admin level not enforced
    local_http_port: int = DEFAULT_PORT
    app_dir: str = "."
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES  # FUNCTIONS_REQUEST_BODY_SIZE_LIMIT

    def __post_init__(self) -> None:
        if self.cors_credentials and "*" in self.cors_origins:
            raise HostSettingsError(CORS_WILDCARD_WITH_CREDENTIALS)
        if self.max_request_body_bytes < 0:
            raise HostSettingsError(f"{BODY_LIMIT_SETTING} must be 0 or more bytes")

    def enforced_levels(self) -> list[str]:
        return [level for level, key in (("function", self.function_key), ("admin", self.master_key)) if key]


#: Where functions run: ``runtime`` (inside Microsoft's azure-functions-runtime, in a worker process: devhost.rpc),
#: ``direct`` (called by devhost in its own process), ``auto`` (runtime on Python 3.13+ when it is installed).
WORKER_SETTING = "DEVHOST_WORKER"
WORKER_MODES = ("auto", "runtime", "direct")


def runtime_available() -> bool:
    """azure-functions-runtime runs on Python 3.13+ only (its wheel requires it), and must be installed."""
    return sys.version_info >= (3, 13) and importlib.util.find_spec("azure_functions_runtime") is not None


def worker_mode(env: Mapping[str, str]) -> str:
    """``runtime`` or ``direct`` from DEVHOST_WORKER; HostSettingsError for an unknown value or a runtime that cannot run."""
    choice = (env.get(WORKER_SETTING) or "auto").strip().lower()
    if choice not in WORKER_MODES:
        raise HostSettingsError(f"{WORKER_SETTING} must be one of {', '.join(WORKER_MODES)}")
    if choice == "direct" or (choice == "auto" and not runtime_available()):
        return "direct"
    if not runtime_available():
        raise HostSettingsError(f"{WORKER_SETTING}=runtime needs Python 3.13+ with azure-functions-runtime installed")
    return "runtime"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    document = json.loads(path.read_text(encoding="utf-8-sig"))
    return document if isinstance(document, dict) else {}


def load_local_settings(app_dir: Path) -> dict[str, Any]:
    """Put local.settings.json ``Values`` into os.environ without overriding what is set; return ``Host``."""
    document = _read_json(Path(app_dir) / "local.settings.json")
    for name, value in (document.get("Values") or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        os.environ.setdefault(name, "" if value is None else str(value))
    return document.get("Host") or {}


def read_route_prefix(app_dir: Path) -> str:
    """host.json ``extensions.http.routePrefix``: "api" by default, "" for no prefix."""
    document = _read_json(Path(app_dir) / "host.json")
    prefix = ((document.get("extensions") or {}).get("http") or {}).get("routePrefix", "api")
    return str(prefix or "").strip("/")


def parse_cors(value: str | None) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/") for origin in (value or "").split(",") if origin.strip())


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"true", "1", "yes"}


def load_host_settings(app_dir: Path | str = ".") -> HostSettings:
    """local.settings.json (Values into os.environ, then Host) and host.json, plus DEVHOST_* variables.

    Raises HostSettingsError for a combination the real host refuses.
    """
    app_dir = Path(app_dir)
    host_section = load_local_settings(app_dir)
    cors = os.environ.get("DEVHOST_CORS")
    credentials = os.environ.get("DEVHOST_CORS_CREDENTIALS")
    port = host_section.get("LocalHttpPort")
    try:
        body_limit = parse_body_limit(os.environ.get(BODY_LIMIT_SETTING))
    except BodyLimitError as error:
        raise HostSettingsError(str(error)) from None
    if body_limit.ignored_value:  # the host ignores a value that is not a number; say so rather than surprise
        logger.warning(
            "%s is not a number of bytes: ignored, as the Functions host does (limit %d)",
            BODY_LIMIT_SETTING,
            body_limit.max_bytes,
        )
    return HostSettings(
        route_prefix=read_route_prefix(app_dir),
        cors_origins=parse_cors(cors if cors is not None else host_section.get("CORS")),
        cors_credentials=_truthy(credentials if credentials is not None else host_section.get("CORSCredentials", False)),
        function_key=os.environ.get("DEVHOST_FUNCTION_KEY") or None,
        master_key=os.environ.get("DEVHOST_MASTER_KEY") or None,
        local_http_port=int(port) if port not in (None, "") else DEFAULT_PORT,
        app_dir=str(app_dir.resolve()),
        max_request_body_bytes=body_limit.max_bytes,
    )
