"""Which credential and client the ACS adapter builds for each configuration (no network)."""

import asyncio
from datetime import UTC

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

from shared.adapters import acs
from shared.adapters.credentials import entra_credential
from shared.domain.errors import MisconfiguredError, UnavailableError
from shared.domain.models import IssuedToken
from shared.settings import load_acs_settings

ENDPOINT = {"ACS_ENDPOINT": "https://contoso.communication.azure.com"}


def _close(credential):
    asyncio.run(credential.close())


def test_in_azure_uses_system_assigned_managed_identity():
    settings = load_acs_settings(ENDPOINT)
    credential = entra_credential(settings.managed_identity_client_id, {"WEBSITE_INSTANCE_ID": "x"})
    assert isinstance(credential, ManagedIdentityCredential)
    _close(credential)


def test_in_azure_with_client_id_uses_user_assigned_identity(monkeypatch):
    seen = {}

    class RecordingCredential(ManagedIdentityCredential):
        def __init__(self, **kwargs):
            seen.update(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr("azure.identity.aio.ManagedIdentityCredential", RecordingCredential)
    settings = load_acs_settings({**ENDPOINT, "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"})
    credential = entra_credential(settings.managed_identity_client_id, {"WEBSITE_INSTANCE_ID": "x"})
    assert isinstance(credential, RecordingCredential)
    assert seen == {"client_id": "11111111-2222-3333-4444-555555555555"}
    _close(credential)


def test_on_a_developer_machine_uses_default_azure_credential():
    settings = load_acs_settings(ENDPOINT)
    credential = entra_credential(settings.managed_identity_client_id, {})
    assert isinstance(credential, DefaultAzureCredential)
    _close(credential)


def test_connection_string_builds_hmac_client_without_entra_credential():
    settings = load_acs_settings({"ACS_CONNECTION_STRING": "endpoint=https://contoso.communication.azure.com/;accesskey=a2V5"})
    client, credential = acs.create_client(settings, {})
    assert credential is None
    assert client._endpoint.rstrip("/") == "https://contoso.communication.azure.com"
    policy = client._identity_service_client._config.authentication_policy
    assert type(policy).__name__ == "HMACCredentialsPolicy"
    asyncio.run(client.close())


def test_endpoint_builds_bearer_client():
    settings = load_acs_settings(ENDPOINT)
    client, credential = acs.create_client(settings, {"WEBSITE_INSTANCE_ID": "x"})
    assert isinstance(credential, ManagedIdentityCredential)
    policy = client._identity_service_client._config.authentication_policy
    assert type(policy).__name__ == "AsyncBearerTokenCredentialPolicy"
    assert policy._scopes == ("https://communication.azure.com//.default",)
    asyncio.run(acs.AcsIdentityClient(client, credential).close())


def test_credential_failure_is_misconfiguration_not_a_crash():
    error = acs.translate_error(ClientAuthenticationError("no identity"))
    assert isinstance(error, MisconfiguredError)


def test_connection_failure_is_unavailable_with_retry_after():
    error = acs.translate_error(ServiceRequestError("refused https://x?key=SECRET"))
    assert isinstance(error, UnavailableError) and error.retry_after >= 1
    assert "SECRET" not in error.message


def test_programming_errors_are_not_disguised():
    with pytest.raises(KeyError):
        acs.translate_error(KeyError("bug"))


def test_issued_token_repr_hides_the_token():
    from datetime import datetime

    token = IssuedToken("eyJsecret", datetime(2030, 1, 1, tzinfo=UTC))
    assert "eyJsecret" not in repr(token)


@pytest.mark.parametrize(
    "expires_on",
    [
        "2026-11-27T10:00:39+00:00",
        "2026-11-27T10:00:39.3+00:00",
        "2026-11-27T10:00:54.447802+00:00",
        "2026-11-27T10:00:39.3244584+00:00",
    ],
)
def test_expires_on_with_zero_to_seven_fractional_digits_parses(expires_on):
    # Real ACS trims trailing zeros: 0 to 7 digits (the Python SDK's recordings show 7 and 6; emulator/references.py).
    from datetime import UTC, datetime

    from shared.adapters.acs import _as_utc

    parsed = _as_utc(expires_on)
    assert parsed.tzinfo is not None and parsed.replace(microsecond=0) == datetime(
        2026, 11, 27, 10, 0, int(expires_on[17:19]), tzinfo=UTC
    )
