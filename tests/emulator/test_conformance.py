"""The emulator answers as real ACS does wherever Microsoft's own material shows the answer.

References (each test names the file it rests on):
- PY: Azure/azure-sdk-assets, tag python/communication/azure-communication-identity_76a3062f95 (named in
  Azure/azure-sdk-for-python sdk/communication/azure-communication-identity/assets.json), directory
  python/sdk/communication/azure-communication-identity/tests/recordings/
  (prefix test_communication_identity_client.pyTestClient):
  real traffic of the Python SDK's tests, api-version 2023-10-01.
- JS: Azure/azure-sdk-for-js, sdk/communication/communication-identity/recordings/node/
  communicationidentityclient_playbacklive_error_cases_/ at commit 1a34cff16d559c7c3333386f2c56091e40dca909, and the test
  that produced them, sdk/communication/communication-identity/test/public/communicationIdentityClient.spec.ts.
- JS2025: Azure/azure-sdk-assets, js/sdk/communication/communication-identity/recordings/node/
  communicationidentityclient_playbacklive_aad_eq_false*/ at commit c4bbe7804b34f9f8ab0b201bceb9f85671074183: the
  newest real traffic found (April 2025, api-version 2023-10-01); where it differs from PY, it wins.
- SPEC: Azure/azure-rest-api-specs, specification/communication/data-plane/Identity/stable/2023-10-01/ at commit
  b2189566f3e4952861e8a84d2c99786570b20190.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from emulator.references import IDENTITY_API_VERSIONS, TEAMS_API_VERSIONS
from tests.emulator.expectations import assert_refused_as_not_owned
from tests.emulator.wire import API, FOREIGN_ID, call, create_identity, teams_token

pytestmark = pytest.mark.integration

IDENTITY_VERSIONS = (
    "2020-07-20-preview2, 2021-03-07, 2021-10-31-preview, 2021-11-01, 2022-06-01, 2022-10-01, 2023-10-01, 2025-03-02-preview"
)
TEAMS_VERSIONS = "2021-10-31-preview, 2022-06-01, 2022-10-01, 2023-10-01"
MS_CV = re.compile(r"^[A-Za-z0-9+/]{22}\.0$")
OID, APP_ID = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


# ---------------------------------------------------------------------- headers and content types


def test_success_headers_and_content_type(emulator):
    # PY test_create_user.json and JS2025 recording_successfully_creates_a_user.json: 201 "application/json; charset=utf-8",
    # MS-CV, api-supported-versions (JS2025's list), the x-ms-client-request-id echoed, Request-Context "appId=",
    # Strict-Transport-Security (JS2025's value; PY had "max-age=2592000")
    answer = call(emulator, "POST", f"/identities?{API}", headers={"x-ms-client-request-id": "9a1b-echo-me"})
    assert answer.status == 201
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.headers["api-supported-versions"] == IDENTITY_VERSIONS
    assert MS_CV.match(answer.headers["MS-CV"]), answer.headers["MS-CV"]
    assert answer.headers["x-ms-client-request-id"] == "9a1b-echo-me"
    assert answer.headers["Request-Context"] == "appId="
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000;includeSubDomains"
    assert answer.headers["X-Cache"] == "CONFIG_NOCACHE"
    assert re.fullmatch(r"\d+ms", answer.headers["X-Processing-Time"])
    assert set(answer.body) == {"identity"} and answer.body["identity"]["id"].startswith("8:acs:")


def test_every_answer_gets_its_own_correlation_vector(emulator):
    # PY recordings: MS-CV differs per answer (sanitized there; JS test recordings show distinct values per answer)
    first, second = call(emulator, "POST", f"/identities?{API}"), call(emulator, "POST", f"/identities?{API}")
    assert first.headers["MS-CV"] != second.headers["MS-CV"]


def test_revoke_and_delete_are_204_without_body_with_versions(emulator):
    # PY test_revoke_tokens.json and test_delete_user.json: 204, no Content-Type, api-supported-versions present
    identity = create_identity(emulator)
    for method, path in (
        ("POST", f"/identities/{identity}/:revokeAccessTokens?{API}"),
        ("DELETE", f"/identities/{identity}?{API}"),
    ):
        answer = call(emulator, method, path, headers={"x-ms-client-request-id": "r-1"})
        assert answer.status == 204 and answer.body is None
        assert "Content-Type" not in answer.headers
        assert answer.headers["api-supported-versions"] == IDENTITY_VERSIONS
        assert answer.headers["x-ms-client-request-id"] == "r-1" and MS_CV.match(answer.headers["MS-CV"])


def test_errors_are_plain_application_json_and_echo_the_request_id(emulator):
    # PY test_get_token_with_invalid_custom_expirations[min_invalid_mins-59].json: the error is "application/json"
    # (no charset) and still echoes x-ms-client-request-id and carries MS-CV
    identity = create_identity(emulator)
    answer = call(
        emulator,
        "POST",
        f"/identities/{identity}/:issueAccessToken?{API}",
        {"scopes": ["chat"], "expiresInMinutes": 59},
        headers={"x-ms-client-request-id": "e-1"},
    )
    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["x-ms-client-request-id"] == "e-1" and MS_CV.match(answer.headers["MS-CV"])


# ---------------------------------------------------------------------- api-versions


@pytest.mark.parametrize("version", [v for v in IDENTITY_API_VERSIONS if v != "2025-03-02-preview"])
def test_identities_accept_every_version_real_acs_lists(emulator, version):
    # JS2025 recording_successfully_creates_a_user.json: api-supported-versions of /identities lists exactly these
    answer = call(emulator, "POST", f"/identities?api-version={version}")
    assert answer.status == 201, answer.body
    assert answer.headers["api-supported-versions"] == IDENTITY_VERSIONS


@pytest.mark.parametrize("version", ["2023-08-01", "2022-09-01", "2021-02-22-preview1", "2099-01-01"])
def test_versions_real_acs_does_not_list_are_refused(emulator, version):
    # JS2025 lists no 2023-08-01 nor 2022-09-01 (both have a spec folder, the service never advertised them in any
    # recording) and no longer 2021-02-22-preview1 (PY, 2023, still did); the refusal's code and message are our choice
    answer = call(emulator, "POST", f"/identities?api-version={version}")
    assert answer.status == 400 and answer.error["code"] == "UnsupportedApiVersion"


def test_a_real_preview_the_emulator_does_not_implement_says_so(emulator):
    # 2025-03-02-preview is real (JS2025 lists it) but adds GET /identities/{id} and customId, which the emulator
    # lacks: our choice is a clear refusal rather than answers that silently ignore those features
    answer = call(emulator, "POST", "/identities?api-version=2025-03-02-preview")
    assert answer.status == 400 and answer.error["code"] == "UnsupportedApiVersion"
    assert "not implemented by the emulator" in answer.error["message"]


def test_teams_exchange_has_its_own_version_list(emulator):
    # PY test_get_token_for_teams_user_with_valid_params.json: the Teams route advertises only these versions
    assert tuple(TEAMS_VERSIONS.split(", ")) == TEAMS_API_VERSIONS
    body = {"token": teams_token(OID, APP_ID), "appId": APP_ID, "userId": OID}
    answer = call(emulator, "POST", "/teamsUser/:exchangeAccessToken?api-version=2021-03-07", body)
    assert answer.status == 400 and answer.error["code"] == "UnsupportedApiVersion"
    answer = call(emulator, "POST", "/teamsUser/:exchangeAccessToken?api-version=2022-06-01", body)
    assert answer.status == 200 and answer.headers["api-supported-versions"] == TEAMS_VERSIONS


# ---------------------------------------------------------------------- identities of another resource


@pytest.mark.parametrize(
    "method, suffix, payload",
    [
        ("POST", "/:issueAccessToken", {"scopes": ["chat", "voip"]}),
        ("POST", "/:revokeAccessTokens", None),
        ("DELETE", "", None),
    ],
)
def test_another_resources_identity_is_401_identity_not_owned(emulator, method, suffix, payload):
    # JS recording_throws_an_error_when_attempting_to_{issue_a_token_for,revoke_a_token_from,delete}_an_invalid_user.json
    # with the id of communicationIdentityClient.spec.ts, and JS2025 ..._error_cases_/recording_throws_an_error_when_
    # attempting_to_{issue_a_token_for,delete}_an_invalid_user.json (api-version 2023-10-01): 401 IdentityNotOwned, this
    # message, "application/json", api-supported-versions present
    answer = call(emulator, method, f"/identities/{FOREIGN_ID}{suffix}?{API}", payload)
    assert answer.status == 401
    assert answer.body == {"error": {"code": "IdentityNotOwned", "message": "Provided identity doesn't belong to the resource."}}
    assert answer.headers["Content-Type"] == "application/json"
    assert "api-supported-versions" in answer.headers


def test_sdk_sees_identity_not_owned_as_client_authentication_error(client):
    # the same recordings, through the Python SDK: a 401 is ClientAuthenticationError with the service's code
    assert_refused_as_not_owned(client, FOREIGN_ID)


def test_own_unknown_identity_stays_404(emulator):
    # no Microsoft reference for an id of this resource that does not exist: our choice, 404 IdentityNotFound
    resource_id = emulator.stats()["resourceId"]
    answer = call(
        emulator, "POST", f"/identities/8:acs:{resource_id}_{uuid.uuid4()}/:issueAccessToken?{API}", {"scopes": ["voip"]}
    )
    assert answer.status == 404 and answer.error["code"] == "IdentityNotFound"


# ---------------------------------------------------------------------- request validation


def test_issue_without_scopes_is_a_model_error_without_versions(emulator):
    # PY test_get_token_with_no_scopes.json: body {} -> 400 ValidationError "Scopes: The Scopes field is required.",
    # target "Scopes", and no api-supported-versions header (rejected before the operation ran)
    identity = create_identity(emulator)
    answer = call(emulator, "POST", f"/identities/{identity}/:issueAccessToken?{API}", {})
    assert answer.status == 400
    assert answer.body == {
        "error": {"code": "ValidationError", "message": "Scopes: The Scopes field is required.", "target": "Scopes"}
    }
    assert "api-supported-versions" not in answer.headers


def test_issue_with_empty_scopes(emulator):
    # JS recording_throws_an_error_when_attempting_to_issue_a_token_without_any_scopes.json: "scopes": [] -> 400,
    # "Invalid scopes - Scopes field is required.", target "scopes", api-supported-versions present
    identity = create_identity(emulator)
    answer = call(emulator, "POST", f"/identities/{identity}/:issueAccessToken?{API}", {"scopes": []})
    assert answer.status == 400
    assert answer.error == {
        "code": "ValidationError",
        "message": "Invalid scopes - Scopes field is required.",
        "target": "scopes",
    }
    assert "api-supported-versions" in answer.headers


@pytest.mark.parametrize("minutes", [59, 1441])
def test_expiry_out_of_range_on_create_and_issue(emulator, minutes):
    # PY test_create_user_and_token_with_invalid_custom_expirations[max_invalid_mins-1441].json and
    # test_get_token_with_invalid_custom_expirations[min_invalid_mins-59].json: 400, this message, target, versions header
    expected = {
        "code": "ValidationError",
        "message": f"ExpiresInMinutes value {minutes} is invalid. Value must be within the [60, 1440] interval.",
        "target": "ExpiresInMinutes",
    }
    identity = create_identity(emulator)
    live_before = emulator.stats()["identities"]["live"]
    create = call(emulator, "POST", f"/identities?{API}", {"createTokenWithScopes": ["chat"], "expiresInMinutes": minutes})
    assert emulator.stats()["identities"]["live"] == live_before  # a refused create creates nothing
    issue = call(
        emulator, "POST", f"/identities/{identity}/:issueAccessToken?{API}", {"scopes": ["chat"], "expiresInMinutes": minutes}
    )
    for answer in (create, issue):
        assert answer.status == 400 and answer.error == expected
        assert answer.headers["api-supported-versions"] == IDENTITY_VERSIONS


def test_create_with_an_empty_object_creates_no_token(emulator):
    # PY test_create_user_and_token_with_no_scopes.json: body {} -> 201 with the identity only (the SDK then fails)
    answer = call(emulator, "POST", f"/identities?{API}", {})
    assert answer.status == 201 and set(answer.body) == {"identity"}


def test_spec_example_create_with_every_scope_and_an_hour(emulator):
    # SPEC examples/CreateIdentity.json: all five scopes and expiresInMinutes 60 -> 201 with identity and accessToken
    body = {"createTokenWithScopes": ["chat", "voip", "chat.join", "chat.join.limited", "voip.join"], "expiresInMinutes": 60}
    answer = call(emulator, "POST", f"/identities?{API}", body)
    assert answer.status == 201 and set(answer.body) == {"identity", "accessToken"}
    assert set(answer.body["accessToken"]) == {"token", "expiresOn"}
    assert emulator.validate(answer.body["accessToken"]["token"])["scopes"] == body["createTokenWithScopes"]


def test_default_limits_are_acs_documented_ones(emulator):
    # learn.microsoft.com/azure/communication-services/concepts/service-limits (Identity): per resource and 30 seconds,
    # create identity 1000, issue token 1000 (createUserAndToken counts as a create here), revoke 500, delete 500,
    # Teams exchange 500
    limits = emulator.call("GET", "limits")
    assert {op: (limit["count"], limit["windowSeconds"]) for op, limit in limits.items()} == {
        "create": (1000, 30.0),
        "issue": (1000, 30.0),
        "revoke": (500, 30.0),
        "delete": (500, 30.0),
        "teams": (500, 30.0),
    }


# ---------------------------------------------------------------------- the Teams exchange, in ACS's order


def teams(emulator, token, app_id, user_id):
    return call(emulator, "POST", f"/teamsUser/:exchangeAccessToken?{API}", {"token": token, "appId": app_id, "userId": user_id})


@pytest.mark.parametrize("token", ["", "invalid", "expired"])
def test_teams_token_is_checked_first(emulator, token):
    # PY test_get_token_for_teams_user_with_invalid_token[empty_token-].json and [invalid_token-invalid].json (both with
    # userId ""), test_get_token_for_teams_user_with_expired_token.json: 401 InvalidAccessToken, no versions header
    if token == "expired":
        token = teams_token(OID, APP_ID, exp=int(time.time()) - 60)
    answer = teams(emulator, token, APP_ID, "")
    assert answer.status == 401
    assert answer.body == {"error": {"code": "InvalidAccessToken", "message": "Provided access token is not valid."}}
    assert "api-supported-versions" not in answer.headers and MS_CV.match(answer.headers["MS-CV"])


@pytest.mark.parametrize(
    "app_id, user_id, message, target, versioned",
    [
        # PY ..._with_invalid_client_id[empty_client_id-].json
        ("", OID, "AppId: The AppId field is required.", "AppId", False),
        # PY ..._with_invalid_user_object_id[empty_user_object_id-].json
        (APP_ID, "", "UserId: The UserId field is required.", "UserId", False),
        # PY ..._with_invalid_client_id[invalid_client_id-invalid].json
        ("invalid", OID, "Provided AppId has invalid format.", "appId", True),
        # PY ..._with_invalid_user_object_id[invalid_user_object_id-invalid].json
        (APP_ID, "invalid", "Provided UserId has invalid format.", "userId", True),
        # PY ..._with_wrong_client_id.json (the user's object id passed as the client id)
        (OID, OID, "AAD application is not the expected one.", "appId", True),
        # PY ..._with_wrong_user_object_id.json (the client id passed as the user's object id)
        (APP_ID, APP_ID, "Provided AAD token issued for unexpected user.", "userId", True),
    ],
)
def test_teams_fields_with_a_valid_token_are_400_with_their_target(emulator, app_id, user_id, message, target, versioned):
    answer = teams(emulator, teams_token(OID, APP_ID), app_id, user_id)
    assert answer.status == 400
    assert answer.body == {"error": {"code": "ValidationError", "message": message, "target": target}}
    assert ("api-supported-versions" in answer.headers) is versioned
    if versioned:
        assert answer.headers["api-supported-versions"] == TEAMS_VERSIONS


def test_teams_success_headers(emulator):
    # PY test_get_token_for_teams_user_with_valid_params.json: 200, "application/json; charset=utf-8", Teams versions
    answer = teams(emulator, teams_token(OID, APP_ID), APP_ID, OID)
    assert answer.status == 200 and set(answer.body) == {"token", "expiresOn"}
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.headers["api-supported-versions"] == TEAMS_VERSIONS


def test_sdk_surfaces_the_teams_target(client):
    # the PY recordings above, through the SDK the app uses: the target reaches HttpResponseError.error.target
    with pytest.raises(HttpResponseError) as caught:
        client.get_token_for_teams_user(teams_token(OID, APP_ID), APP_ID, "not-a-guid")
    assert caught.value.status_code == 400 and caught.value.error.target == "userId"
    with pytest.raises(ClientAuthenticationError) as caught:
        client.get_token_for_teams_user("", APP_ID, "")
    assert caught.value.status_code == 401 and caught.value.error.code == "InvalidAccessToken"
