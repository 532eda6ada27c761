"""Every Identity operation through the official SDK (sync and async) against the emulator."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta

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
    assert timedelta(hours=23, minutes=58) < expires - datetime.now(UTC) <= timedelta(hours=24)
    # ACS's format, 0 to 7 fractional digits, trailing zeros trimmed: Azure/azure-sdk-assets tag
    # python/communication/azure-communication-identity_76a3062f95, ...TestClienttest_revoke_tokens.json (7 digits) and
    # ...test_get_token_for_teams_user_with_valid_params.json (6 digits)
    assert isinstance(default.expires_on, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,6}[1-9])?\+00:00", default.expires_on)
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
    # Azure/azure-rest-api-specs .../Identity/stable/2023-10-01/CommunicationIdentity.json (commit b2189566…):
    # revokeAccessTokens "Revoke all access tokens for the specific identity"; later tokens are new ones
    user = client.create_user()
    before = client.get_token(user, ["voip"]).token
    client.revoke_tokens(user)
    after = client.get_token(user, ["voip"]).token  # same second as the revoke: still valid
    assert emulator.validate(before)["reason"] == "revoked"
    assert emulator.validate(after)["valid"] is True


def test_delete_user_then_404(client, emulator):
    # the same spec: delete "revoke[s] all tokens for the identity and delete[s] all associated data"; the 404 after it
    # and the 204 for a second delete are our choice (no recording shows either)
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
        # Azure/azure-sdk-for-js sdk/communication/communication-identity/recordings/node/
        # communicationidentityclient_playbacklive_error_cases_/recording_throws_an_error_when_attempting_to_issue_a_token_without_any_scopes.json  # noqa: E501 - a recording name, kept whole to be found
        # (commit 1a34cff16d559c7c3333386f2c56091e40dca909): "scopes": [] is 400, target "scopes", this message
        ([], None, "scopes", "Invalid scopes - Scopes field is required."),
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


@pytest.mark.parametrize("bad", [{"aud": "https://graph.microsoft.com"}, {"exp": 1}])
def test_teams_exchange_rejects_unusable_tokens(client, bad):
    # an unusable (here: wrong audience, expired) Entra ID token is 401 InvalidAccessToken: Azure/azure-sdk-assets tag
    # python/communication/azure-communication-identity_76a3062f95, ...test_get_token_for_teams_user_with_expired_token.json
    from azure.core.exceptions import ClientAuthenticationError

    oid, app_id = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    with pytest.raises(ClientAuthenticationError) as caught:
        client.get_token_for_teams_user(teams_token(oid, app_id, bad), app_id, oid)
    assert caught.value.status_code == 401 and caught.value.error.code == "InvalidAccessToken"


@pytest.mark.parametrize(
    "bad, target, message",
    [
        ({"oid": "33333333-3333-3333-3333-333333333333"}, "userId", "Provided AAD token issued for unexpected user."),
        ({"appid": "44444444-4444-4444-4444-444444444444"}, "appId", "AAD application is not the expected one."),
    ],
)
def test_teams_exchange_names_the_mismatched_field(client, bad, target, message):
    # a valid token for another user or app is 400 ValidationError naming the field: Azure/azure-sdk-assets tag
    # python/communication/azure-communication-identity_76a3062f95, ...test_get_token_for_teams_user_with_wrong_user_object_id.json  # noqa: E501 - a recording name, kept whole to be found
    # and ...test_get_token_for_teams_user_with_wrong_client_id.json
    oid, app_id = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    with pytest.raises(HttpResponseError) as caught:
        client.get_token_for_teams_user(teams_token(oid, app_id, bad), app_id, oid)
    assert caught.value.status_code == 400 and caught.value.error.code == "ValidationError"
    assert caught.value.error.target == target and caught.value.error.message == message


async def test_async_client_every_operation(emulator):
    async with AsyncClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path)
    ) as client:
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
