"""Easy Auth headers and dev mode: who the caller is, and what is refused."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from shared.adapters.auth import create_authenticator
from shared.domain.caller import Caller
from shared.domain.errors import ForbiddenError, UnauthenticatedError
from shared.settings import load_auth_settings


def easyauth(**extra):
    return create_authenticator(load_auth_settings({"AUTH_MODE": "easyauth", **extra}))


def principal(claims, role_typ="roles"):
    return base64.b64encode(
        json.dumps({"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": role_typ}).encode()
    ).decode()


async def test_easyauth_headers_any_case():
    caller = await easyauth().authenticate({"x-ms-client-principal-id": "u1", "X-Ms-Client-Principal-Idp": "AAD"})
    assert caller == Caller("aad", "u1", frozenset())


async def test_easyauth_roles_from_principal():
    claims = [{"typ": "roles", "val": "Agent"}, {"typ": "groups", "val": "g1"}, {"typ": "custom_role", "val": "C"}]
    caller = await easyauth().authenticate(
        {"X-MS-CLIENT-PRINCIPAL-ID": "u1", "X-MS-CLIENT-PRINCIPAL": principal(claims, "custom_role")}
    )
    assert caller.roles == {"Agent", "g1", "C"}


@pytest.mark.parametrize("raw", ["%%%", base64.b64encode(b"[1,2]").decode(), base64.b64encode(b"not json").decode()])
async def test_easyauth_malformed_principal(raw):
    with pytest.raises(UnauthenticatedError):
        await easyauth().authenticate({"X-MS-CLIENT-PRINCIPAL-ID": "u1", "X-MS-CLIENT-PRINCIPAL": raw})


async def test_easyauth_principal_must_match_the_id():
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "other"}]
    with pytest.raises(UnauthenticatedError):
        await easyauth().authenticate({"X-MS-CLIENT-PRINCIPAL-ID": "u1", "X-MS-CLIENT-PRINCIPAL": principal(claims)})


async def test_easyauth_missing_id():
    with pytest.raises(UnauthenticatedError):
        await easyauth().authenticate({"X-MS-CLIENT-PRINCIPAL-IDP": "aad"})


async def test_easyauth_required_roles():
    auth = easyauth(AUTH_REQUIRED_ROLES="Agent")
    with pytest.raises(ForbiddenError):
        await auth.authenticate({"X-MS-CLIENT-PRINCIPAL-ID": "u1"})


async def test_dev_mode_user_and_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="shared.auth"):
        auth = create_authenticator(load_auth_settings({"AUTH_MODE": "dev"}))
    assert "X-Dev-User" in caplog.text
    caller = await auth.authenticate({"x-dev-user": "alice", "X-Dev-Roles": "a, b"})
    assert caller == Caller("dev", "alice", frozenset({"a", "b"}))
    for bad in ({}, {"X-Dev-User": "  "}, {"X-Dev-User": "x" * 129}, {"X-Dev-User": "tab\there"}):
        with pytest.raises(UnauthenticatedError):
            await auth.authenticate(bad)


def test_caller_keys_are_unambiguous():
    assert Caller("a|b", "c", frozenset()).key != Caller("a", "b|c", frozenset()).key
    assert Caller("dev", "alice", frozenset()).key == Caller("dev", "alice", frozenset({"x"})).key
