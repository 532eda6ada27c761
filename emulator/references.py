"""What real ACS Identity answers, as Microsoft's own material shows it.

Every constant here is a fact observed in one of these references (short strings the service sends
are quoted because clients and support engineers match on them; no Microsoft code is copied):

- ``SPEC``: Azure/azure-rest-api-specs, specification/communication/data-plane/Identity/stable/2023-10-01/
  (CommunicationIdentity.json and examples/, commit b2189566f3e4952861e8a84d2c99786570b20190).
- ``PY_RECORDINGS``: Azure/azure-sdk-assets, tag python/communication/azure-communication-identity_76a3062f95
  (the tag named in Azure/azure-sdk-for-python sdk/communication/azure-communication-identity/assets.json),
  python/sdk/communication/azure-communication-identity/tests/recordings/: real traffic of the Python SDK's
  tests against api-version 2023-10-01.
- ``JS_RECORDINGS``: Azure/azure-sdk-for-js, sdk/communication/communication-identity/recordings/node/
  communicationidentityclient_playbacklive_error_cases_/ (commit 1a34cff16d559c7c3333386f2c56091e40dca909):
  real traffic of the JavaScript SDK's error-case tests against api-version 2022-10-01.
- ``JS_RECORDINGS_2025``: Azure/azure-sdk-assets, js/sdk/communication/communication-identity/recordings/node/
  communicationidentityclient_playbacklive_aad_eq_false*/ (commit c4bbe7804b34f9f8ab0b201bceb9f85671074183):
  the JavaScript SDK's tests recorded in April 2025 against api-version 2023-10-01, the newest traffic found.
  Where it differs from older recordings (the version list, Strict-Transport-Security), it wins.

emulator/README.md maps each emulated behaviour to its reference (or to "our choice").
"""

from __future__ import annotations

#: ``api-supported-versions`` of /identities answers in JS_RECORDINGS_2025 (...recording_successfully_creates_a_user.json,
#: ..._error_cases_/recording_throws_an_error_when_attempting_to_delete_an_invalid_user.json). In 2023 (PY_RECORDINGS,
#: ...test_create_user.json) the list still had 2021-02-22-preview1 and not yet 2025-03-02-preview.
IDENTITY_API_VERSIONS = (
    "2020-07-20-preview2",
    "2021-03-07",
    "2021-10-31-preview",
    "2021-11-01",
    "2022-06-01",
    "2022-10-01",
    "2023-10-01",
    "2025-03-02-preview",
)

#: Versions real ACS lists whose additions (GET /identities/{id}, customId) the emulator does not implement: refused
#: with a message saying so rather than half-served (our choice).
NOT_IMPLEMENTED_API_VERSIONS = ("2025-03-02-preview",)

#: ``api-supported-versions`` of /teamsUser/:exchangeAccessToken answers in PY_RECORDINGS
#: (...test_get_token_for_teams_user_with_valid_params.json, ..._with_wrong_client_id.json).
TEAMS_API_VERSIONS = ("2021-10-31-preview", "2022-06-01", "2022-10-01", "2023-10-01")

#: The api-version the SDK (1.5.0) and the SPEC examples use.
CURRENT_API_VERSION = "2023-10-01"

#: Success answers with a body: PY_RECORDINGS (201, 200). Error answers: "application/json" (all recordings).
SUCCESS_CONTENT_TYPE = "application/json; charset=utf-8"
ERROR_CONTENT_TYPE = "application/json"

#: Headers every recorded answer carries with a fixed value: Request-Context and X-Cache in all recordings;
#: Strict-Transport-Security as in JS_RECORDINGS_2025 (it was "max-age=2592000" in PY_RECORDINGS and JS_RECORDINGS).
FIXED_HEADERS = {
    "Request-Context": "appId=",
    "Strict-Transport-Security": "max-age=31536000;includeSubDomains",
    "X-Cache": "CONFIG_NOCACHE",
}

# ------------------------------------------------------------------ identities of another resource

#: 401 on issue, revoke and delete of ``8:acs:00000000-0000-0000-0000-000000000000_00000000-…`` (JS_RECORDINGS:
#: recording_throws_an_error_when_attempting_to_{issue_a_token_for,revoke_a_token_from,delete}_an_invalid_user.json;
#: the same for issue and delete at api-version 2023-10-01 in JS_RECORDINGS_2025), with api-supported-versions.
IDENTITY_NOT_OWNED = ("IdentityNotOwned", "Provided identity doesn't belong to the resource.")

# ------------------------------------------------------------------ request validation

#: ``issueAccessToken`` with body ``{}``: 400, target "Scopes", no api-supported-versions header
#: (PY_RECORDINGS ...test_get_token_with_no_scopes.json). The same shape for a missing Teams field:
#: "AppId: The AppId field is required." / "UserId: ..." (..._with_invalid_client_id[empty_client_id-].json,
#: ..._with_invalid_user_object_id[empty_user_object_id-].json).
REQUIRED_FIELD_MESSAGE = "{field}: The {field} field is required."

#: ``issueAccessToken`` with ``"scopes": []``: 400, target "scopes" (JS_RECORDINGS
#: recording_throws_an_error_when_attempting_to_issue_a_token_without_any_scopes.json; the JS test asserts the message).
EMPTY_SCOPES = ("Invalid scopes - Scopes field is required.", "scopes")

#: ``expiresInMinutes`` 59 or 1441: 400 ValidationError, target "ExpiresInMinutes" (PY_RECORDINGS
#: ..._with_invalid_custom_expirations[min_invalid_mins-59].json, [max_invalid_mins-1441].json).
EXPIRY_MESSAGE = "ExpiresInMinutes value {value} is invalid. Value must be within the [{low}, {high}] interval."

# ------------------------------------------------------------------ Teams exchange (PY_RECORDINGS, api-version 2023-10-01)

#: An empty, malformed or expired Entra ID token: 401, checked before every other field (an empty token with an
#: empty userId is still 401), no api-supported-versions header (..._with_invalid_token[empty_token-].json,
#: [invalid_token-invalid].json, ..._with_expired_token.json).
INVALID_ACCESS_TOKEN = ("InvalidAccessToken", "Provided access token is not valid.")

#: With a valid token: 400 ValidationError, each with its target and the Teams api-supported-versions header.
APP_ID_INVALID_FORMAT = ("Provided AppId has invalid format.", "appId")  # ..._with_invalid_client_id[invalid_client_id-invalid]
USER_ID_INVALID_FORMAT = ("Provided UserId has invalid format.", "userId")  # ..._with_invalid_user_object_id[invalid_...]
APP_ID_NOT_EXPECTED = ("AAD application is not the expected one.", "appId")  # ..._with_wrong_client_id.json
USER_ID_NOT_EXPECTED = ("Provided AAD token issued for unexpected user.", "userId")  # ..._with_wrong_user_object_id.json
