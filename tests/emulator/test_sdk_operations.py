"""Every Identity operation through the official SDK (sync and async) against the emulator."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

pytestmark = pytest.mark.integration


def standard_b64_payload(token: str) -> dict:
    """Decode the payload the way CommunicationTokenCredential does: standard (non-URL-safe) base64."""
    payload = token.split(".")[1]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True))


def test_create_user(client):
    user = client.create_user()
    assert user.properties["id"].startswith("8:acs:")
    assert user.raw_id == user.properties["id"]


def test_create_user_and_token_with_expiry(client, emulator):
    user, token = client.create_user_and_token(["chat", "voip"], token_expires_in=timedelta(minutes=60))
    claims = standard_b64_payload(token.token)
    assert claims["skypeid"] == user.properties["id"].removeprefix("8:")
    assert claims["acsScope"] == "chat,voip"
    assert claims["scp"] == 1792 and claims["resourceLocation"] == "unitedstates"
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(token.token)["alg"] == "RS256"
    assert emulator.validate(token.token)["valid"] is True


def test_get_token_default_and_custom_expiry(client):
    user = client.create_user()
    default = client.get_token(user, ["voip"])
    expires = datetime.fromisoformat(default.expires_on) if isinstance(default.expires_on, str) else default.expires_on
    assert timedelta(hours=23, minutes=58) < expires - datetime.now(timezone.utc) <= timedelta(hours=24)
    assert isinstance(default.expires_on, str) and len(default.expires_on.split(".")[1]) == len("3244584+00:00")
    custom = client.get_token(user, ["chat"], token_expires_in=timedelta(minutes=90))
    assert standard_b64_payload(custom.token)["exp"] - standard_b64_payload(custom.token)["iat"] == 5400


def test_tokens_survive_standard_base64_decoding(client):
    user = client.create_user()
    for _ in range(30):
        token = client.get_token(user, ["chat", "voip"]).token
        header, payload, _ = token.split(".")
        assert "-" not in header + payload and "_" not in header + payload
        standard_b64_payload(token)


def test_revoke_invalidates_earlier_tokens_only(client, emulator):
    user = client.create_user()
    before = client.get_token(user, ["voip"]).token
    client.revoke_tokens(user)
    after = client.get_token(user, ["voip"]).token  # same second as the revoke: still valid
    assert emulator.validate(before)["reason"] == "revoked"
    assert emulator.validate(after)["valid"] is True


def test_delete_user_then_404(client, emulator):
    user, token = client.create_user_and_token(["voip"])
    client.delete_user(user)
    assert emulator.validate(token.token)["reason"] == "identity_deleted"
    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_token(user, ["voip"])
    assert caught.value.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        client.revoke_tokens(user)
    client.delete_user(user)  # deleting twice is accepted (204)
    with pytest.raises(ResourceNotFoundError):
        client.delete_user(CommunicationUserIdentifier("8:acs:never-existed"))


@pytest.mark.parametrize(
    "scopes, minutes, target, fragment",
    [
        (["video"], None, "Scopes", "is invalid"),
        ([], None, "Scopes", "at least one"),
        (["voip"], 30, "ExpiresInMinutes", "ExpiresInMinutes value 30 is invalid. Value must be within the [60, 1440] interval."),
        (["voip"], 1441, "ExpiresInMinutes", "ExpiresInMinutes value 1441 is invalid"),
    ],
)
def test_validation_errors_are_400_with_acs_error_body(client, scopes, minutes, target, fragment):
    user = client.create_user()
    kwargs = {} if minutes is None else {"token_expires_in": timedelta(minutes=minutes)}
    with pytest.raises(HttpResponseError) as caught:
        client.get_token(user, scopes, **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.error.code == "ValidationError"
    assert caught.value.error.target == target
    assert fragment in caught.value.error.message


def teams_token(oid: str, app_id: str, overrides: dict | None = None) -> str:
    claims = {"aud": "https://auth.msft.communication.azure.com", "oid": oid, "appid": app_id, "exp": int(time.time()) + 3600}
    claims.update(overrides or {})
    return jwt.encode(claims, "not-checked-by-the-emulator-at-all", algorithm="HS256")


def test_teams_exchange(client, emulator):
    oid, app_id = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    token = client.get_token_for_teams_user(teams_token(oid, app_id), app_id, oid)
    assert standard_b64_payload(token.token)["skypeid"] == f"orgid:{oid}"
    assert emulator.validate(token.token)["valid"] is True


@pytest.mark.parametrize("bad", [{"oid": "someone-else"}, {"appid": "other-app"}, {"aud": "https://graph.microsoft.com"}, {"exp": 1}])
def test_teams_exchange_rejects_mismatched_tokens(client, bad):
    from azure.core.exceptions import ClientAuthenticationError

    oid, app_id = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    with pytest.raises(ClientAuthenticationError) as caught:
        client.get_token_for_teams_user(teams_token(oid, app_id, bad), app_id, oid)
    assert caught.value.status_code == 401 and caught.value.error.code == "InvalidAccessToken"


async def test_async_client_every_operation(emulator):
    async with AsyncClient.from_connection_string(emulator.connection_string, connection_verify=str(emulator.cert_path)) as client:
        user = await client.create_user()
        user2, first = await client.create_user_and_token(["chat"])
        token = await client.get_token(user, ["voip"], token_expires_in=timedelta(minutes=120))
        assert emulator.validate(token.token)["valid"] is True
        await client.revoke_tokens(user)
        assert emulator.validate(token.token)["reason"] == "revoked"
        await client.delete_user(user)
        await client.delete_user(user2)
        assert emulator.validate(first.token)["reason"] == "identity_deleted"
        with pytest.raises(ResourceNotFoundError):
            await client.get_token(user, ["voip"])
