"""Every endpoint's success path, end to end: HTTP -> app -> Azurite + ACS emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.data.tables import TableClient

from tests.support import MAPPING_ROWS
from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration


def mapping_rows(azurite, app, acs_user_id: str) -> list[dict]:
    with TableClient.from_connection_string(azurite.connection_string, table_name=app.table_name) as table:
        return list(table.query_entities(f"{MAPPING_ROWS} and AcsUserId eq @id", parameters={"id": acs_user_id}))


def parse_rfc3339(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_issue_creates_identity_and_returns_a_valid_token(dev_app, emulator, azurite, user):
    response = post_json(dev_app.api("token"), {"scopes": ["voip"], "expiresInMinutes": 60}, as_user(user))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"communicationUserId", "token", "expiresOn", "scopes"}
    assert body["communicationUserId"].startswith("8:acs:")
    assert body["scopes"] == ["voip"]
    expires = parse_rfc3339(body["expiresOn"])
    assert timedelta(minutes=58) < expires - datetime.now(UTC) <= timedelta(minutes=61)

    verdict = emulator.validate(body["token"])
    assert verdict["valid"] is True
    assert verdict["communicationUserId"] == body["communicationUserId"]
    assert verdict["scopes"] == ["voip"]

    rows = mapping_rows(azurite, dev_app, body["communicationUserId"])
    assert len(rows) == 1
    assert rows[0]["LastIssuedAt"] is not None and rows[0].get("LastRevokedAt") is None


def test_same_user_keeps_one_identity_across_calls(dev_app, user):
    first = post_json(dev_app.api("token"), None, as_user(user)).json()
    second = post_json(dev_app.api("token"), {"scopes": ["chat"]}, as_user(user)).json()
    assert first["communicationUserId"] == second["communicationUserId"]
    assert first["scopes"] == ["chat", "voip"]  # the default scopes
    assert second["scopes"] == ["chat"]
    assert first["token"] != second["token"]


def test_refresh_reuses_the_identity_and_never_creates_one(dev_app, user, emulator):
    missing = post_json(dev_app.api("token/refresh"), None, as_user(user))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "identity_not_found"

    issued = post_json(dev_app.api("token"), None, as_user(user)).json()
    refreshed = post_json(dev_app.api("token/refresh"), {"expiresInMinutes": 120}, as_user(user))
    assert refreshed.status_code == 200
    assert refreshed.json()["communicationUserId"] == issued["communicationUserId"]
    assert emulator.validate(refreshed.json()["token"])["valid"] is True


def test_revoke_invalidates_earlier_tokens_in_acs(dev_app, azurite, emulator, user):
    issued = post_json(dev_app.api("token"), None, as_user(user)).json()
    assert emulator.validate(issued["token"])["valid"] is True

    revoked = post_json(dev_app.api("token/revoke"), None, as_user(user))
    assert revoked.status_code == 204 and revoked.content == b""

    verdict = emulator.validate(issued["token"])
    assert verdict["valid"] is False and verdict["reason"] == "revoked"
    rows = mapping_rows(azurite, dev_app, issued["communicationUserId"])
    assert rows[0]["LastRevokedAt"] is not None

    fresh = post_json(dev_app.api("token/refresh"), None, as_user(user)).json()
    assert fresh["communicationUserId"] == issued["communicationUserId"]
    assert emulator.validate(fresh["token"])["valid"] is True


def test_delete_removes_identity_and_mapping_and_is_idempotent(dev_app, azurite, emulator, user):
    issued = post_json(dev_app.api("token"), None, as_user(user)).json()
    deleted = requests.delete(dev_app.api("identity"), headers=as_user(user), timeout=30)
    assert deleted.status_code == 204
    assert mapping_rows(azurite, dev_app, issued["communicationUserId"]) == []
    assert emulator.validate(issued["token"])["valid"] is False

    again = requests.delete(dev_app.api("identity"), headers=as_user(user), timeout=30)
    assert again.status_code == 204
    assert post_json(dev_app.api("token/refresh"), None, as_user(user)).status_code == 404

    reborn = post_json(dev_app.api("token"), None, as_user(user)).json()
    assert reborn["communicationUserId"] != issued["communicationUserId"]


def test_a_user_cannot_touch_another_users_identity(dev_app, emulator, user):
    alice = post_json(dev_app.api("token"), None, as_user(user)).json()
    mallory = f"{user}-mallory"
    # Mallory names Alice's id in the body and query: the body field is refused, the query ignored.
    attempt = post_json(
        dev_app.api(f"token/refresh?communicationUserId={alice['communicationUserId']}"),
        {"communicationUserId": alice["communicationUserId"]},
        as_user(mallory),
    )
    assert attempt.status_code == 400 and attempt.json()["error"]["code"] == "unknown_field"
    assert post_json(dev_app.api("token/refresh"), None, as_user(mallory)).status_code == 404
    assert post_json(dev_app.api("token/revoke"), None, as_user(mallory)).status_code == 204
    assert requests.delete(dev_app.api("identity"), headers=as_user(mallory), timeout=30).status_code == 204

    assert emulator.validate(alice["token"])["valid"] is True  # untouched by Mallory's calls
    again = post_json(dev_app.api("token/refresh"), None, as_user(user)).json()
    assert again["communicationUserId"] == alice["communicationUserId"]


def test_health_reports_configuration_without_secrets(dev_app, emulator):
    response = requests.get(dev_app.api("health"), timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["acsCredential"] == "connection_string"
    assert body["checks"]["authMode"] == "dev"
    assert emulator.access_key not in response.text


def test_logs_carry_no_tokens_or_keys(dev_app, emulator, user):
    issued = post_json(dev_app.api("token"), None, as_user(user)).json()
    post_json(dev_app.api("token/revoke"), None, as_user(user))
    log = dev_app.log_text()
    assert "function=issue_token" in log and "status=200" in log
    assert issued["token"] not in log
    assert issued["token"].rsplit(".", 1)[-1] not in log
    assert emulator.access_key not in log
    assert user not in log  # users appear hashed


def test_default_scopes_and_expiry_follow_settings(app_factory):
    app = app_factory(
        TOKEN_ALLOWED_SCOPES="chat,voip,chat.join", TOKEN_DEFAULT_SCOPES="chat.join", TOKEN_DEFAULT_EXPIRY_MINUTES="90"
    )
    for path in ("token", "token/refresh"):
        body = post_json(app.api(path), None, as_user("settings-user")).json()
        assert body["scopes"] == ["chat.join"]
        assert timedelta(minutes=88) < parse_rfc3339(body["expiresOn"]) - datetime.now(UTC) <= timedelta(minutes=91)


def test_teams_exchange_success_and_rejection(dev_app, emulator):
    import time

    import jwt

    oid, app_id = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    claims = {"aud": "https://auth.msft.communication.azure.com", "oid": oid, "appid": app_id, "exp": int(time.time()) + 3600}
    teams_token = jwt.encode(claims, "an-entra-signature-the-emulator-does-not-check", algorithm="HS256")
    body = {"teamsToken": teams_token, "clientId": app_id, "userObjectId": oid}
    response = post_json(dev_app.api("token/teams"), body, as_user("teams-user"))
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"token", "expiresOn"}
    assert emulator.validate(response.json()["token"])["communicationUserId"] == f"8:orgid:{oid}"

    # Real ACS answers a user id the token was not issued for with 400 ValidationError, target userId
    # (Azure/azure-sdk-assets, python/communication/azure-communication-identity recordings,
    # test_get_token_for_teams_user_with_wrong_user_object_id); the caller learns which field is wrong.
    mismatch = post_json(
        dev_app.api("token/teams"), {**body, "userObjectId": "33333333-3333-3333-3333-333333333333"}, as_user("teams-user")
    )
    error = mismatch.json()["error"]
    assert mismatch.status_code == 400 and (error["code"], error["target"]) == ("teams_token_mismatch", "userObjectId")
    assert "tenant id" in error["message"]
    wrong_app = post_json(
        dev_app.api("token/teams"), {**body, "clientId": "44444444-4444-4444-4444-444444444444"}, as_user("teams-user")
    )
    assert (wrong_app.status_code, wrong_app.json()["error"]["target"]) == (400, "clientId")
    # A token ACS does not accept at all stays invalid_teams_token (401 InvalidAccessToken from ACS).
    forged = post_json(dev_app.api("token/teams"), {**body, "teamsToken": "not-a-jwt"}, as_user("teams-user"))
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_teams_token"
    assert teams_token not in dev_app.log_text()


def test_cors_headers_for_allowed_origins_only(app_factory):
    app = app_factory(DEVHOST_CORS="https://app.example.com")
    allowed = requests.options(
        app.api("token"),
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=30,
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    answer = post_json(app.api("token"), None, {**as_user("cors-user"), "Origin": "https://app.example.com"})
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = post_json(app.api("token"), None, {**as_user("cors-user"), "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
