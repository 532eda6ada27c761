"""The attack from issue 11, finding 1: one signed-in user floods POST /api/token/revoke.

Before: 1,000 revokes by one user all answered 204 and all reached ACS, whose 500 revokes per 30 s
per resource are shared with every other user and the sweep. Now a repeated revoke of an identity
that got no token since costs no ACS call, and each user has a revoke/delete budget
(REVOKE_RATE_LIMIT_PER_HOUR, 6 by default) beyond which the answer is 429 with Retry-After.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.identity_map import entity_keys
from shared.domain.caller import user_key
from tests.support.app_process import as_user, post_json

pytestmark = pytest.mark.integration

FLOOD = 200


def got_the_token_minutes_ago(app, azurite, user: str, minutes: int) -> None:
    """Move the user's LastIssuedAt back, as for a user who signed in a while before the attack."""
    partition, row = entity_keys(user_key("dev", user))
    with TableClient.from_connection_string(azurite.connection_string, app.table_name) as table:
        when = datetime.now(UTC) - timedelta(minutes=minutes)
        table.update_entity({"PartitionKey": partition, "RowKey": row, "LastIssuedAt": when}, mode=UpdateMode.MERGE)


def test_one_users_revoke_flood_reaches_acs_once_and_spares_everyone_else(app_factory, azurite, emulator, user):
    app = app_factory(REVOKE_RATE_LIMIT_PER_HOUR="6")
    attacker = post_json(app.api("token"), None, as_user(user)).json()["communicationUserId"]
    got_the_token_minutes_ago(app, azurite, user, 10)
    victim_name = f"{user}-other"
    victim = post_json(app.api("token"), None, as_user(victim_name)).json()["communicationUserId"]

    statuses = [post_json(app.api("token/revoke"), None, as_user(user)).status_code for _ in range(FLOOD)]
    # the first reaches ACS; the next five are within the budget but need no ACS call (no token was
    # issued since); the rest are refused by the per-user limit
    assert statuses[:6] == [204] * 6 and statuses[6:] == [429] * (FLOOD - 6)
    refused = post_json(app.api("token/revoke"), None, as_user(user))
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 60
    assert emulator.calls(attacker)["revoke"] == 1

    # everyone else's sign-out still goes straight through
    assert post_json(app.api("token/revoke"), None, as_user(victim_name)).status_code == 204
    assert emulator.calls(victim)["revoke"] == 1


def test_a_flood_right_after_sign_in_is_bounded_by_the_budget(app_factory, emulator, user):
    # Within two minutes of an issue a token may still be in flight, so each revoke goes to ACS;
    # the per-user budget bounds what one user can spend.
    app = app_factory(REVOKE_RATE_LIMIT_PER_HOUR="6")
    identity = post_json(app.api("token"), None, as_user(user)).json()["communicationUserId"]
    statuses = [post_json(app.api("token/revoke"), None, as_user(user)).status_code for _ in range(50)]
    assert statuses.count(204) == 6 and statuses.count(429) == 44
    assert emulator.calls(identity)["revoke"] == 6
