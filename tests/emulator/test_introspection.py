"""What the emulator tells tests about what ACS saw: calls per identity, live tokens, busiest 30-second windows.

These are the emulator's own control endpoints (not ACS behaviour); see emulator/README.md.
"""

from __future__ import annotations

import time
import urllib.error
from datetime import timedelta

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from tests.emulator.wire import API, FOREIGN_ID, call, teams_token

pytestmark = pytest.mark.integration


def test_calls_per_identity_with_times_and_statuses(client, emulator):
    started = time.time()
    user = client.create_user()
    identity_id = user.properties["id"]
    client.get_token(user, ["voip"])
    with pytest.raises(HttpResponseError):
        client.get_token(user, ["voip"], token_expires_in=timedelta(minutes=30))
    seen = emulator.identity(identity_id)
    assert seen["exists"] is True and seen["deleted"] is False and seen["ownedByThisResource"] is True
    assert seen["totalCalls"] == 3
    assert set(seen["calls"]) == {"create", "issue"}
    issue = seen["calls"]["issue"]
    assert issue["count"] == 2 and issue["succeeded"] == 1 and issue["statuses"] == {"200": 1, "400": 1}
    assert started <= issue["first"] <= issue["last"] <= time.time()
    assert [entry["status"] for entry in issue["recent"]] == [200, 400]
    assert emulator.calls(identity_id) == {"create": 1, "issue": 2}


def test_no_call_for_an_identity_is_provable(emulator):
    untouched = emulator.identity(FOREIGN_ID)
    assert untouched == {
        "id": FOREIGN_ID,
        "exists": False,
        "deleted": False,
        "ownedByThisResource": False,
        "calls": {},
        "totalCalls": 0,
        "validFrom": None,
        "liveTokens": 0,
    }
    assert emulator.calls(FOREIGN_ID) == {}


def test_every_token_issued_before_a_time_is_dead_after_revoke(client, emulator):
    user, _ = client.create_user_and_token(["chat"])
    identity_id = user.properties["id"]
    client.get_token(user, ["voip"])
    cutoff = time.time()
    assert emulator.identity(identity_id, before=cutoff)["liveTokensIssuedBefore"] == 2
    client.revoke_tokens(user)
    after_revoke = emulator.identity(identity_id, before=cutoff)
    assert after_revoke["liveTokensIssuedBefore"] == 0 and after_revoke["liveTokens"] == 0
    assert after_revoke["validFrom"] >= cutoff
    fresh = client.get_token(user, ["voip"])
    later = emulator.identity(identity_id, before=time.time())
    assert later["liveTokens"] == 1 and later["liveTokensIssuedBefore"] == 1
    assert emulator.validate(fresh.token)["valid"] is True  # the ledger agrees with the token verdicts
    client.delete_user(user)
    assert emulator.identity(identity_id, before=time.time())["liveTokensIssuedBefore"] == 0
    assert emulator.identity(identity_id)["deleted"] is True


def test_teams_calls_are_filed_under_the_teams_identity(client, emulator):
    oid, app_id = "55555555-5555-4555-8555-555555555555", "66666666-6666-4666-8666-666666666666"
    client.get_token_for_teams_user(teams_token(oid, app_id), app_id, oid)
    seen = emulator.identity(f"8:orgid:{oid}")
    assert seen["calls"]["teams"]["count"] == 1 and seen["liveTokens"] == 1


def test_peaks_count_successes_per_operation_since_reset(emulator):
    client = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=0
    )
    emulator.reset()
    assert emulator.peaks()["operations"] == {}
    users = [client.create_user() for _ in range(3)]
    for user in users:
        client.revoke_tokens(user)
    with pytest.raises(ClientAuthenticationError):
        client.revoke_tokens(CommunicationUserIdentifier(FOREIGN_ID))  # refused: not a success
    emulator.set_faults(throttleNext=1)
    with pytest.raises(HttpResponseError):
        client.revoke_tokens(users[0])  # throttled: not a success either
    peaks = emulator.peaks()
    assert peaks["windowSeconds"] == 30.0
    assert emulator.peak("revoke") == 3 and emulator.peak("create") == 3 and emulator.peak("delete") == 0
    assert peaks["operations"]["revoke"]["reachedAt"] >= peaks["since"]
    assert emulator.stats()["statuses"]["revoke:204"] == 3  # stats() is unchanged beside it
    emulator.reset()
    assert emulator.peak("revoke") == 0 and emulator.identities() == {}


def test_identities_summary_lists_who_was_called(emulator):
    emulator.reset()
    answer = call(emulator, "POST", f"/identities?{API}")
    identity_id = answer.body["identity"]["id"]
    call(emulator, "POST", f"/identities/{identity_id}/:revokeAccessTokens?{API}")
    assert emulator.identities() == {identity_id: {"create": 1, "revoke": 1}}


def test_bad_before_is_400(emulator):
    with pytest.raises(urllib.error.HTTPError) as caught:
        emulator.call("GET", "identities/x?before=soon")
    assert caught.value.code == 400
