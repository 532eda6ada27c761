"""Support lookups and the audit trail, over HTTP against Azurite and the emulator (issue 12, items 2 and 3)."""

from __future__ import annotations

import time
import urllib.parse

import pytest
import requests
from azure.data.tables import TableClient

from shared.adapters.identity_map import index_keys
from shared.domain.caller import user_key
from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration


def lookup_user(app, user: str) -> requests.Response:
    return requests.get(app.api("ops/identities"), params={"userId": user}, timeout=30)


def lookup_identity(app, acs_user_id: str) -> requests.Response:
    return requests.get(app.api("ops/identities/" + urllib.parse.quote(acs_user_id, safe="")), timeout=30)


def sweep(app) -> dict:
    ran = requests.post(f"{app.url}/admin/functions/revocation_sweep", json={}, timeout=60)
    assert ran.status_code == 202, app.log_text()[-4000:]  # a failed run: its traceback is in the host's log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = requests.get(app.api("ops/revocations/status"), timeout=30).json()
        if status["pendingRequests"] == 0:
            return status
        time.sleep(0.2)
    raise AssertionError(f"the sweep did not finish: {status}")


@pytest.fixture(scope="module")
def ops_app(app_factory):
    return app_factory(AUDIT_TABLE_NAME="audit" + str(int(time.time() * 1000) % 10**9))


def test_a_users_identity_requests_and_history_and_the_way_back(ops_app, user):
    grant = post_json(ops_app.api("token"), None, as_user(user)).json()
    assert post_json(ops_app.api("token/revoke"), None, as_user(user)).status_code == 204

    found = lookup_user(ops_app, user)
    assert found.status_code == 200
    body = found.json()
    assert body["user"] == {"provider": "dev", "userId": user}
    assert body["identity"]["acsUserId"] == grant["communicationUserId"]
    assert body["identity"]["lastIssuedAt"] and body["identity"]["lastRevokedAt"] and body["pendingRequests"] == []
    assert [(e["event"], e["source"]) for e in body["history"]] == [("tokens_revoked", "user"), ("identity_created", "user")]
    assert grant["token"] not in found.text

    back = lookup_identity(ops_app, grant["communicationUserId"])
    assert back.status_code == 200
    assert (back.json()["user"], back.json()["relation"]) == ({"provider": "dev", "userId": user}, "current")
    assert lookup_identity(ops_app, "8:acs:00000000-0000-0000-0000-000000000000_unknown").status_code == 404


def test_an_operator_delete_leaves_a_trail_that_names_nobody(ops_app, azurite, user):
    grant = post_json(ops_app.api("token"), None, as_user(user)).json()
    recorded = post_json(ops_app.api("ops/revocations"), {"userId": user, "action": "delete", "reason": "GDPR erasure"})
    assert recorded.status_code == 202
    sweep(ops_app)

    body = lookup_user(ops_app, user).json()
    assert body["identity"] is None and body["pendingRequests"] == []
    assert body["history"][0] == {
        "event": "identity_deleted",
        "source": "operator",
        "reason": "GDPR erasure",
        "at": body["history"][0]["at"],
        "acsUserId": grant["communicationUserId"],
    }
    assert lookup_identity(ops_app, grant["communicationUserId"]).status_code == 404  # its index entry went with it
    with TableClient.from_connection_string(azurite.connection_string, ops_app.table_name) as identities:
        assert not [entity for entity in identities.list_entities() if user in str(dict(entity))]
    audit_table = ops_app.env["AUDIT_TABLE_NAME"]
    with TableClient.from_connection_string(azurite.connection_string, audit_table) as audit:
        entries = list(audit.list_entities())
    assert entries and not [entity for entity in entries if user in str(dict(entity))]  # keyed references only


def test_a_stale_index_entry_is_reported_as_unknown_and_dropped(ops_app, azurite, user):
    grant = post_json(ops_app.api("token"), None, as_user(user)).json()
    other = f"{user}-elsewhere"
    partition, row = index_keys("8:acs:stale_1")  # as a crash between the index write and the mapping write leaves it
    with TableClient.from_connection_string(azurite.connection_string, ops_app.table_name) as table:
        table.upsert_entity(
            {"PartitionKey": partition, "RowKey": row, "AcsUserId": "8:acs:stale_1", "UserKey": user_key("dev", other)}
        )
        assert lookup_identity(ops_app, "8:acs:stale_1").status_code == 404
        assert not list(table.query_entities("PartitionKey eq @p and RowKey eq @r", parameters={"p": partition, "r": row}))
    assert lookup_identity(ops_app, grant["communicationUserId"]).status_code == 200


def test_lookup_refuses_bad_queries(ops_app):
    assert requests.get(ops_app.api("ops/identities"), timeout=30).status_code == 400
    unknown = requests.get(ops_app.api("ops/identities"), params={"userId": "a", "email": "x"}, timeout=30)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_field"
