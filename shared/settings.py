"""App settings, parsed and validated into typed values.

Azure Functions exposes app settings (and ``local.settings.json`` values when
running locally) as environment variables. Each group is parsed by a pure
function of a mapping so it can be unit-tested; the composition root
(:class:`shared.composition.Services`) parses each group once per worker, so a
request never re-parses. Every error names the setting at fault.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from shared.domain.errors import SettingsError
from shared.domain.policy import ACS_MAX_EXPIRY_MINUTES, ACS_MIN_EXPIRY_MINUTES, ACS_SCOPES, TokenPolicy
from shared.domain.revocation.sweep import RevocationSettings

AuthMode = Literal["easyauth", "jwt", "dev"]
AUTH_MODES: tuple[AuthMode, ...] = ("easyauth", "jwt", "dev")
#: The token claim that names the user in AUTH_MODE=jwt: one claim, one key space (never "oid, else sub").
UserClaim = Literal["oid", "sub"]
USER_CLAIMS: tuple[UserClaim, ...] = ("oid", "sub")


@dataclass(frozen=True)
class AcsSettings:
    """How to reach ACS: a connection string (local, emulator) or an endpoint plus Entra ID."""

    connection_string: str | None
    endpoint: str | None
    #: client id of a user-assigned managed identity (AZURE_CLIENT_ID)
    managed_identity_client_id: str | None
    #: PEM file to trust for the ACS endpoint (the local emulator's self-signed certificate)
    ca_bundle: str | None
    #: which ACS resource this is: the endpoint's host (and port), lower case. Mappings record it, so a
    #: mapping made in another resource (a moved deployment, shared storage) is never used here.
    resource: str = ""

    @property
    def uses_connection_string(self) -> bool:
        return self.connection_string is not None


@dataclass(frozen=True)
class StorageSettings:
    """Where the identity map lives: the Function App's own storage account."""

    connection_string: str | None
    table_endpoint: str | None
    managed_identity_client_id: str | None
    table_name: str
    #: queue service for the revocation sweep's fan-out (managed identity mode)
    queue_endpoint: str | None = None


@dataclass(frozen=True)
class AuthSettings:
    """How callers prove who they are."""

    mode: AuthMode
    issuer: str | None
    audiences: tuple[str, ...]
    jwks_url: str | None
    #: if non-empty, the caller needs one of these values in its roles or groups claims
    required_roles: frozenset[str]
    allow_dev_in_azure: bool
    #: jwt: the claim whose value is the user (Entra ID: oid; Entra External ID/B2C user flows, Auth0, Google: sub)
    user_claim: UserClaim = "oid"
    #: jwt: if non-empty, the token needs one of these in its scp/scope claim (403 otherwise)
    required_scopes: frozenset[str] = frozenset()
    #: jwt: accept an application's own token (client credentials); off: only users' delegated tokens
    allow_app_tokens: bool = False
    #: jwt: the issuer's keys are fetched at most once per this many seconds, whatever the outcome
    jwks_min_interval_seconds: int = 30


# --------------------------------------------------------------------------- helpers


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(name, f"must be within [{lo}, {hi}], got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def parse_key_values(text: str) -> dict[str, str]:
    """``Key=value;Other=value`` (connection strings and the like) with lower-cased keys."""
    pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
    return {key.strip().lower(): value.strip() for key, value in pairs}


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _get(env, name)
    if raw is None:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _words(raw: str | None) -> tuple[str, ...]:
    """Values separated by commas and/or spaces (OAuth scopes never contain either)."""
    return tuple(dict.fromkeys((raw or "").replace(",", " ").split()))


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1 (where plain http is acceptable)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url(env: Mapping[str, str], name: str, *, allow_loopback_http: bool = True) -> str | None:
    raw = _get(env, name)
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise SettingsError(name, "must be an absolute https:// URL")
    if parsed.scheme == "http" and not (allow_loopback_http and is_loopback_host(parsed.hostname)):
        raise SettingsError(name, "must use https:// (plain http is allowed only for loopback addresses)")
    return raw


# --------------------------------------------------------------------------- loaders


def load_acs_settings(env: Mapping[str, str]) -> AcsSettings:
    connection_string = _get(env, "ACS_CONNECTION_STRING")
    endpoint = _url(env, "ACS_ENDPOINT")
    if connection_string is not None:
        lowered = parse_key_values(connection_string)
        if not lowered.get("endpoint") or not lowered.get("accesskey"):
            raise SettingsError(
                "ACS_CONNECTION_STRING", "must look like endpoint=https://<resource>.communication.azure.com/;accesskey=<key>"
            )
    elif endpoint is None:
        raise SettingsError(
            "ACS_CONNECTION_STRING", "is not set (nor ACS_ENDPOINT): the service has no way to reach Azure Communication Services"
        )
    ca_bundle = _get(env, "ACS_CA_BUNDLE")
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise SettingsError("ACS_CA_BUNDLE", f"points to a file that does not exist: {ca_bundle}")
    used_endpoint = parse_key_values(connection_string)["endpoint"] if connection_string else endpoint
    return AcsSettings(
        connection_string=connection_string,
        endpoint=endpoint.rstrip("/") if endpoint else None,
        managed_identity_client_id=_get(env, "AZURE_CLIENT_ID"),
        ca_bundle=ca_bundle,
        resource=resource_name(used_endpoint or ""),
    )


def resource_name(endpoint: str) -> str:
    """``https://Contoso.communication.azure.com/`` -> ``contoso.communication.azure.com`` (host and port)."""
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    return (parsed.netloc or endpoint).lower().rstrip("/")


def load_storage_settings(env: Mapping[str, str]) -> StorageSettings:
    connection_string = _get(env, "AzureWebJobsStorage")
    table_endpoint = _url(env, "AzureWebJobsStorage__tableServiceUri")
    if connection_string is None and table_endpoint is None:
        raise SettingsError(
            "AzureWebJobsStorage", "is not set (nor AzureWebJobsStorage__tableServiceUri): the identity map needs Table storage"
        )
    table_name = _table_name(env, "IDENTITY_TABLE_NAME", "acsidentities")
    return StorageSettings(
        connection_string=connection_string,
        table_endpoint=table_endpoint,
        managed_identity_client_id=_get(env, "AzureWebJobsStorage__clientId") or _get(env, "AZURE_CLIENT_ID"),
        table_name=table_name,
        queue_endpoint=_url(env, "AzureWebJobsStorage__queueServiceUri"),
    )


def _table_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name) or default
    if not (3 <= len(value) <= 63 and value.isalnum() and value[0].isalpha()):
        raise SettingsError(name, "must be 3-63 letters or digits, starting with a letter")
    return value


def _queue_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name) or default
    valid_chars = all(c.islower() or c.isdigit() or c == "-" for c in value)
    if not (3 <= len(value) <= 63 and valid_chars and value[0].isalnum() and value[-1].isalnum() and "--" not in value):
        raise SettingsError(
            name, "must be 3-63 lowercase letters, digits or single hyphens, starting and ending with a letter or digit"
        )
    return value


def load_revocation_settings(env: Mapping[str, str]) -> RevocationSettings:
    return RevocationSettings(
        table_name=_table_name(env, "REVOCATION_TABLE_NAME", "acsrevocations"),
        queue_name=_queue_name(env, "REVOCATION_QUEUE_NAME", "acs-revocations"),
        rate_per_30s=_int(env, "REVOCATION_RATE_PER_30S", 400, 1, 100_000),
        concurrency=_int(env, "REVOCATION_CONCURRENCY", 8, 1, 64),
        time_budget_seconds=_int(env, "REVOCATION_TIME_BUDGET_SECONDS", 240, 5, 3600),
        batch_size=_int(env, "REVOCATION_BATCH_SIZE", 200, 1, 500),
        max_session_hours=_int(env, "MAX_SESSION_HOURS", 0, 0, 24 * 366),
        retention_days=_int(env, "IDENTITY_RETENTION_DAYS", 0, 0, 3660),
    )


def load_auth_settings(env: Mapping[str, str]) -> AuthSettings:
    mode = (_get(env, "AUTH_MODE") or "").lower()
    if mode not in AUTH_MODES:  # narrows mode to AuthMode
        raise SettingsError("AUTH_MODE", f"must be one of {', '.join(AUTH_MODES)} (got {mode or 'nothing'})")
    issuer = _url(env, "AUTH_ISSUER")
    audiences = _csv(env, "AUTH_AUDIENCE")
    jwks_url = _url(env, "AUTH_JWKS_URL")
    if mode == "jwt":
        if issuer is None:
            raise SettingsError("AUTH_ISSUER", "is required when AUTH_MODE=jwt")
        if not audiences:
            raise SettingsError("AUTH_AUDIENCE", "is required when AUTH_MODE=jwt")
    allow_dev_in_azure = _bool(env, "AUTH_DEV_ALLOW_IN_AZURE")
    if mode == "dev" and running_in_azure(env) and not allow_dev_in_azure:
        raise SettingsError(
            "AUTH_MODE",
            "is 'dev', which trusts a plain X-Dev-User header and must never run in Azure "
            "(set AUTH_DEV_ALLOW_IN_AZURE=true only for a throwaway test deployment)",
        )
    user_claim = (_get(env, "AUTH_USER_CLAIM") or "oid").lower()
    if user_claim not in USER_CLAIMS:  # narrows user_claim to UserClaim
        raise SettingsError("AUTH_USER_CLAIM", f"must be one of {', '.join(USER_CLAIMS)} (got {user_claim!r})")
    required_scopes = frozenset(_words(_get(env, "AUTH_REQUIRED_SCOPES")))
    if required_scopes and mode != "jwt":
        # Only a bearer token carries scopes this app can read: refuse rather than silently not enforce.
        raise SettingsError("AUTH_REQUIRED_SCOPES", f"is enforced only when AUTH_MODE=jwt (AUTH_MODE is {mode})")
    return AuthSettings(
        mode=mode,
        issuer=issuer,
        audiences=audiences,
        jwks_url=jwks_url,
        required_roles=frozenset(_csv(env, "AUTH_REQUIRED_ROLES")),
        allow_dev_in_azure=allow_dev_in_azure,
        user_claim=user_claim,
        required_scopes=required_scopes,
        allow_app_tokens=_bool(env, "AUTH_ALLOW_APP_TOKENS"),
        jwks_min_interval_seconds=_int(env, "AUTH_JWKS_MIN_INTERVAL_SECONDS", 30, 1, 3600),
    )


def load_token_policy(env: Mapping[str, str]) -> TokenPolicy:
    allowed = _csv(env, "TOKEN_ALLOWED_SCOPES") or ("chat", "voip")
    unknown = [s for s in allowed if s not in ACS_SCOPES]
    if unknown:
        raise SettingsError("TOKEN_ALLOWED_SCOPES", f"has unknown scopes {unknown}; ACS knows {sorted(ACS_SCOPES)}")
    defaults = _csv(env, "TOKEN_DEFAULT_SCOPES") or allowed
    outside = [s for s in defaults if s not in allowed]
    if outside:
        raise SettingsError("TOKEN_DEFAULT_SCOPES", f"has scopes outside TOKEN_ALLOWED_SCOPES: {outside}")
    max_expiry = _int(env, "TOKEN_MAX_EXPIRY_MINUTES", ACS_MAX_EXPIRY_MINUTES, ACS_MIN_EXPIRY_MINUTES, ACS_MAX_EXPIRY_MINUTES)
    default_expiry = _int(env, "TOKEN_DEFAULT_EXPIRY_MINUTES", min(1440, max_expiry), ACS_MIN_EXPIRY_MINUTES, max_expiry)
    return TokenPolicy(
        allowed_scopes=frozenset(allowed),
        default_scopes=defaults,
        default_expiry_minutes=default_expiry,
        max_expiry_minutes=max_expiry,
        per_user_per_minute=_int(env, "TOKEN_RATE_LIMIT_PER_MINUTE", 10, 0, 10_000),
        revokes_per_user_per_hour=_int(env, "REVOKE_RATE_LIMIT_PER_HOUR", 6, 0, 10_000),
        fleet_rate_per_30s=_int(env, "TOKEN_FLEET_RATE_PER_30S", 0, 0, 1000),
    )


@dataclass(frozen=True)
class AuditSettings:
    """Where the audit trail lives and how long it is kept."""

    table_name: str
    #: entries older than this are pruned by the sweep
    retention_days: int


def load_audit_settings(env: Mapping[str, str]) -> AuditSettings:
    return AuditSettings(
        table_name=_table_name(env, "AUDIT_TABLE_NAME", "acsaudit"),
        retention_days=_int(env, "AUDIT_RETENTION_DAYS", 90, 1, 3660),
    )


def load_user_ref_key(env: Mapping[str, str]) -> str | None:
    """``USER_REF_KEY``: the secret behind logged user references; unset means generate one and keep it."""
    key = _get(env, "USER_REF_KEY")
    if key is not None and len(key) < 32:
        raise SettingsError("USER_REF_KEY", "must be at least 32 characters (a random secret; unset it to have one generated)")
    return key


def running_in_azure(env: Mapping[str, str]) -> bool:
    """The Functions/App Service platform sets WEBSITE_INSTANCE_ID on every instance."""
    return bool(_get(env, "WEBSITE_INSTANCE_ID"))
