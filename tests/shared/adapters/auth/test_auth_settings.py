"""The AUTH_* settings of issue 11 (items 2-4): defaults, accepted values and the errors that name the setting."""

from __future__ import annotations

import pytest

from shared.domain.errors import SettingsError
from shared.settings import load_auth_settings

JWT = {"AUTH_MODE": "jwt", "AUTH_ISSUER": "https://login.example.com/t/v2.0", "AUTH_AUDIENCE": "api://x"}


def test_defaults_are_oid_delegated_tokens_only_no_scope_and_30_s_between_key_fetches():
    settings = load_auth_settings(JWT)
    assert settings.user_claim == "oid"
    assert settings.allow_app_tokens is False
    assert settings.required_scopes == frozenset()
    assert settings.jwks_min_interval_seconds == 30


def test_empty_values_mean_the_defaults():
    names = ("AUTH_USER_CLAIM", "AUTH_ALLOW_APP_TOKENS", "AUTH_REQUIRED_SCOPES", "AUTH_JWKS_MIN_INTERVAL_SECONDS")
    empty = dict.fromkeys(names, "")
    assert load_auth_settings({**JWT, **empty}) == load_auth_settings(JWT)


@pytest.mark.parametrize("value, expected", [("sub", "sub"), (" OID ", "oid"), ("Sub", "sub")])
def test_user_claim(value, expected):
    assert load_auth_settings({**JWT, "AUTH_USER_CLAIM": value}).user_claim == expected


@pytest.mark.parametrize("value", ["email", "upn", "preferred_username", "oid,sub", "name"])
def test_user_claim_is_one_immutable_id_claim(value):
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({**JWT, "AUTH_USER_CLAIM": value})
    assert caught.value.setting == "AUTH_USER_CLAIM"


def test_required_scopes_split_on_commas_and_spaces():
    settings = load_auth_settings({**JWT, "AUTH_REQUIRED_SCOPES": "access_as_user, tokens.issue  api://x/Other"})
    assert settings.required_scopes == {"access_as_user", "tokens.issue", "api://x/Other"}


@pytest.mark.parametrize("mode", ["easyauth", "dev"])
def test_required_scopes_outside_jwt_mode_are_refused_not_silently_ignored(mode):
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({"AUTH_MODE": mode, "AUTH_REQUIRED_SCOPES": "access_as_user"})
    assert caught.value.setting == "AUTH_REQUIRED_SCOPES"


def test_allow_app_tokens_is_a_boolean():
    assert load_auth_settings({**JWT, "AUTH_ALLOW_APP_TOKENS": "true"}).allow_app_tokens is True
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({**JWT, "AUTH_ALLOW_APP_TOKENS": "sometimes"})
    assert caught.value.setting == "AUTH_ALLOW_APP_TOKENS"


@pytest.mark.parametrize("value", ["0", "3601", "often"])
def test_jwks_interval_bounds(value):
    with pytest.raises(SettingsError) as caught:
        load_auth_settings({**JWT, "AUTH_JWKS_MIN_INTERVAL_SECONDS": value})
    assert caught.value.setting == "AUTH_JWKS_MIN_INTERVAL_SECONDS"
    assert load_auth_settings({**JWT, "AUTH_JWKS_MIN_INTERVAL_SECONDS": "300"}).jwks_min_interval_seconds == 300
