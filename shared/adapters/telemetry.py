"""Application Insights export of the app's own logs and traces, only when configured.

Why it is shaped like this:

- Cold start matters on Flex Consumption: ``azure.monitor.opentelemetry`` pulls in the
  OpenTelemetry SDK and instrumentations (hundreds of milliseconds). It is imported inside
  ``configure_telemetry`` and only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, so
  local runs and tests pay nothing.
- ``configure_azure_monitor`` installs global providers; calling it twice duplicates every
  exported item. ``configure_telemetry`` does it once per process, under a lock.
- Only the app's loggers (``shared.*``) are exported, not the Azure SDK's chatty ones.
- ``record_request`` exports numbers and a vetted operation name, never free text: a
  token, key or header value cannot reach Application Insights through it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping

from shared.settings import parse_key_values

#: Parent of every logger this app uses (shared.http, shared.acs, ...): what gets exported.
APP_LOGGER_NAME = "shared"
CONNECTION_STRING_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
#: Set by the infra ("ClientId=<uami client id>;Authorization=AAD") when the Application
#: Insights resource only accepts Entra-authenticated telemetry.
AUTHENTICATION_STRING_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

#: Function names look like this (issue_token, health); anything else is not exported verbatim.
_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: What is exported instead of a value that does not look like a name.
UNKNOWN = "unknown"

_logger = logging.getLogger(f"{APP_LOGGER_NAME}.telemetry")
_lock = threading.Lock()
_configured = False


#: The Azure SDKs' loggers. azure-core's HttpLoggingPolicy logs each request's method and URL at INFO; a Table
#: URL names the row, and the identity map's row key is the plain SHA-256 of the user key (the very value
#: USER_REF_KEY keeps out of the log). In the Functions worker every log record of an invocation goes to the
#: host under the function's category, so host.json's ``"azure": "Warning"`` does not reach these.
SDK_LOGGER_NAME = "azure"


def quiet_sdk_logs() -> None:
    """Raise the Azure SDKs' loggers to WARNING unless someone chose a level for them (an operator debugging)."""
    sdk = logging.getLogger(SDK_LOGGER_NAME)
    if sdk.level == logging.NOTSET:
        sdk.setLevel(logging.WARNING)


def configure_telemetry(env: Mapping[str, str] = os.environ) -> bool:
    """Start exporting to Application Insights if it is configured; True when exporting.

    Idempotent and cheap to call from every cold start: without the connection string it
    returns False at once and imports nothing.
    """
    global _configured  # noqa: PLW0603 - configure_azure_monitor installs process-wide providers; so is this flag
    connection_string = (env.get(CONNECTION_STRING_SETTING) or "").strip()
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        # Lazy import: the heavy part, paid only by deployments that export telemetry.
        from azure.monitor.opentelemetry import configure_azure_monitor

        options: dict[str, object] = {"connection_string": connection_string, "logger_name": APP_LOGGER_NAME}
        credential = _entra_credential(env)
        if credential is not None:
            options["credential"] = credential
        configure_azure_monitor(**options)
        app_logger = logging.getLogger(APP_LOGGER_NAME)
        if app_logger.level == logging.NOTSET:
            # The per-request line is INFO; without this a WARNING root level would drop it.
            app_logger.setLevel(logging.INFO)
        _configured = True
        return True


def is_configured() -> bool:
    """True once this process exports telemetry."""
    return _configured


def record_request(operation: str, status: int, latency_ms: float) -> None:
    """Attach operation, status and latency to the current span and log them as customDimensions.

    Does nothing unless telemetry is configured (the HTTP wrapper already logs one line
    locally). Only the values' vetted forms are exported; see ``safe_name``.
    """
    if not _configured:
        return
    dimensions: dict[str, str | int | float] = {
        "operation": safe_name(operation),
        "status": int(status),
        "latency_ms": round(float(latency_ms), 1),
    }
    from opentelemetry import trace  # already imported by configure_telemetry: no extra cost

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"app.{key}": value for key, value in dimensions.items()})
    # Log record attributes ("extra") become customDimensions in Application Insights.
    _logger.info(
        "request operation=%s status=%d latency_ms=%.1f",
        dimensions["operation"],
        dimensions["status"],
        dimensions["latency_ms"],
        extra=dimensions,
    )


def safe_name(value: object) -> str:
    """``value`` if it looks like a name from code (short snake_case: a function, an error code), else ``UNKNOWN``.

    Used for every label this app exports (request dimensions here, metric attributes in
    ``shared/adapters/metrics.py``): a token, key, header or user id never has this shape
    in full, so it is replaced, never echoed.
    """
    if isinstance(value, str) and _NAME_PATTERN.fullmatch(value):
        return value
    return UNKNOWN


def _entra_credential(env: Mapping[str, str]) -> object | None:
    """A managed identity credential when the authentication string asks for Entra (AAD) auth."""
    raw = (env.get(AUTHENTICATION_STRING_SETTING) or "").strip()
    if not raw:
        return None
    fields = parse_key_values(raw)
    if fields.get("authorization", "").lower() != "aad":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = fields.get("clientid") or None
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
