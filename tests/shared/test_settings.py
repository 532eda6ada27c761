"""Settings are validated once, and every error names the setting at fault."""

import pytest

from shared.domain.errors import SettingsError
from shared.settings import (
    load_acs_settings,
    load_auth_settings,
    load_storage_settings,
    load_token_policy,
)

CS = "endpoint=https://contoso.communication.azure.com/;accesskey=a2V5"


def test_acs_connection_string_wins_over_endpoint():
    s = load_acs_settings({"ACS_CONNECTION_STRING": CS, "ACS_ENDPOINT": "https://x.communication.azure.com"})
    assert s.connection_string == CS
    assert s.uses_connection_string


def test_acs_endpoint_alone_means_entra_id():
    s = load_acs_settings({"ACS_ENDPOINT": "https://x.communication.azure.com/", "AZURE_CLIENT_ID": "abc"})
    assert s.connection_string is None
    assert s.endpoint == "https://x.communication.azure.com"
    assert s.managed_identity_client_id == "abc"


@pytest.mark.parametrize(
    "env, setting, fragment",
    [
        ({}, "ACS_CONNECTION_STRING", "is not set"),
        ({"ACS_CONNECTION_STRING": "   "}, "ACS_CONNECTION_STRING", "is not set"),
        ({"ACS_CONNECTION_STRING": "endpoint=https://x/"}, "ACS_CONNECTION_STRING", "must look like"),
        ({"ACS_ENDPOINT": "x.communication.azure.com"}, "ACS_ENDPOINT", "absolute https"),
        ({"ACS_ENDPOINT": "http://x.communication.azure.com"}, "ACS_ENDPOINT", "must use https"),
        ({"ACS_CONNECTION_STRING": CS, "ACS_CA_BUNDLE": "/nope/cert.pem"}, "ACS_CA_BUNDLE", "does not exist"),
    ],
)
def test_acs_errors_name_the_setting(env, setting, fragment):
    with pytest.raises(SettingsError) as caught:
        load_acs_settings(env)
    assert caught.value.setting == setting
    assert setting in caught.value.message and fragment in caught.value.message


def test_acs_error_never_echoes_the_connection_string():
    with pytest.raises(SettingsError) as caught:
        load_acs_settings({"ACS_CONNECTION_STRING": "accesskey=SECRETKEY123"})
    assert "SECRETKEY123" not in str(caught.value)


def test_http_endpoint_allowed_for_loopback_only():
    assert load_acs_settings({"ACS_ENDPOINT": "http://127.0.0.1:8443"}).endpoint == "http://127.0.0.1:8443"


def test_storage_needs_a_connection_string_or_table_uri():
    with pytest.raises(SettingsError) as caught:
        load_storage_settings({})
    assert caught.value.setting == "AzureWebJobsStorage"
    s = load_storage_settings({"AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net"})
    assert s.table_endpoint == "https://acct.table.core.windows.net" and s.table_name == "acsidentities"


def test_storage_table_name_validated():
    with pytest.raises(SettingsError) as caught:
        load_storage_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "IDENTITY_TABLE_NAME": "no-dashes"})
    assert caught.value.setting == "IDENTITY_TABLE_NAME"


def test_auth_mode_required_and_checked():
    for env in ({}, {"AUTH_MODE": "magic"}):
        with pytest.raises(SettingsError) as caught:
            load_auth_settings(env)
        assert caught.value.setting == "AUTH_MODE"


def test_jwt_mode_needs_issuer_and_audience():
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({"AUTH_MODE": "jwt", "AUTH_AUDIENCE": "api://x"})
    assert caught.value.setting == "AUTH_ISSUER"
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({"AUTH_MODE": "jwt", "AUTH_ISSUER": "https://login.example.com/t/v2.0"})
    assert caught.value.setting == "AUTH_AUDIENCE"
    s = load_auth_settings({"AUTH_MODE": "JWT", "AUTH_ISSUER": "https://i.example", "AUTH_AUDIENCE": "a, b,a"})
    assert s.mode == "jwt" and s.audiences == ("a", "b")


def test_dev_mode_refuses_to_run_in_azure_unless_forced():
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({"AUTH_MODE": "dev", "WEBSITE_INSTANCE_ID": "abc"})
    assert caught.value.setting == "AUTH_MODE" and "never run in Azure" in caught.value.message
    s = load_auth_settings({"AUTH_MODE": "dev", "WEBSITE_INSTANCE_ID": "abc", "AUTH_DEV_ALLOW_IN_AZURE": "true"})
    assert s.mode == "dev" and s.allow_dev_in_azure


def test_bool_setting_rejects_nonsense():
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({"AUTH_MODE": "dev", "AUTH_DEV_ALLOW_IN_AZURE": "perhaps"})
    assert caught.value.setting == "AUTH_DEV_ALLOW_IN_AZURE"


def test_token_policy_defaults():
    p = load_token_policy({})
    assert p.allowed_scopes == {"chat", "voip"}
    assert p.default_scopes == ("chat", "voip")
    assert (p.default_expiry_minutes, p.max_expiry_minutes, p.per_user_per_minute) == (1440, 1440, 10)


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"TOKEN_ALLOWED_SCOPES": "chat,video"}, "TOKEN_ALLOWED_SCOPES"),
        ({"TOKEN_DEFAULT_SCOPES": "voip.join"}, "TOKEN_DEFAULT_SCOPES"),
        ({"TOKEN_MAX_EXPIRY_MINUTES": "1441"}, "TOKEN_MAX_EXPIRY_MINUTES"),
        ({"TOKEN_MAX_EXPIRY_MINUTES": "59"}, "TOKEN_MAX_EXPIRY_MINUTES"),
        ({"TOKEN_MAX_EXPIRY_MINUTES": "120", "TOKEN_DEFAULT_EXPIRY_MINUTES": "240"}, "TOKEN_DEFAULT_EXPIRY_MINUTES"),
        ({"TOKEN_RATE_LIMIT_PER_MINUTE": "ten"}, "TOKEN_RATE_LIMIT_PER_MINUTE"),
    ],
)
def test_token_policy_errors_name_the_setting(env, setting):
    with pytest.raises(SettingsError) as caught:
        load_token_policy(env)
    assert caught.value.setting == setting


def test_token_policy_default_expiry_follows_max():
    p = load_token_policy({"TOKEN_MAX_EXPIRY_MINUTES": "120"})
    assert p.default_expiry_minutes == 120
