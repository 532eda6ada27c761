"""Two emulators as two ACS resources: distinct resource ids, and each refuses the other's identities as real ACS does.

Reference for the refusal: Azure/azure-sdk-for-js sdk/communication/communication-identity/recordings/node/
communicationidentityclient_playbacklive_error_cases_/recording_throws_an_error_when_attempting_to_{issue_a_token_for,
revoke_a_token_from,delete}_an_invalid_user.json (commit 1a34cff16d559c7c3333386f2c56091e40dca909): 401 IdentityNotOwned,
"Provided identity doesn't belong to the resource."
"""

from __future__ import annotations

import uuid

import pytest
from azure.communication.identity import CommunicationIdentityClient

from localdev.emulator_process import EmulatorProcess, start_emulator
from tests.emulator.expectations import assert_refused_as_not_owned

pytestmark = pytest.mark.integration

RESOURCE_A = "aaaaaaaa-0000-4000-8000-00000000000a"
RESOURCE_B = "bbbbbbbb-0000-4000-8000-00000000000b"


@pytest.fixture(scope="module")
def two_resources(tmp_path_factory):
    cert_dir = tmp_path_factory.mktemp("cert")  # one certificate for both, as make run would share it
    with (
        start_emulator(cert_dir=cert_dir, resource_id=RESOURCE_A, resource_name="acs-a") as first,
        start_emulator(cert_dir=cert_dir, resource_id=RESOURCE_B, resource_name="acs-b") as second,
    ):
        yield first, second


def sdk(emulator: EmulatorProcess) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path)
    )


def test_each_emulator_is_the_resource_it_was_told(two_resources):
    first, second = two_resources
    assert (first.resource_id, second.resource_id) == (RESOURCE_A, RESOURCE_B)
    assert (first.stats()["resource"], second.stats()["resource"]) == ("acs-a", "acs-b")
    user, token = sdk(first).create_user_and_token(["voip"])
    assert user.properties["id"].startswith(f"8:acs:{RESOURCE_A}_")
    assert sdk(second).create_user().properties["id"].startswith(f"8:acs:{RESOURCE_B}_")
    assert first.validate(token.token)["valid"] is True
    assert second.validate(token.token)["reason"] == "bad_signature"  # each resource signs with its own key


@pytest.mark.parametrize("owner_index", [0, 1])
def test_each_refuses_the_others_identities_with_identity_not_owned(two_resources, owner_index):
    owner, other = two_resources[owner_index], two_resources[1 - owner_index]
    user, token = sdk(owner).create_user_and_token(["chat"])
    assert_refused_as_not_owned(sdk(other), user.properties["id"])
    assert owner.validate(token.token)["valid"] is True  # the refusals touched nothing at the owner
    # the other resource saw (and refused) one call of each operation for that id; the owner saw only the create
    assert other.calls(user.properties["id"]) == {"delete": 1, "issue": 1, "revoke": 1}
    assert other.identity(user.properties["id"])["calls"]["issue"]["statuses"] == {"401": 1}
    assert owner.calls(user.properties["id"]) == {"create": 1}


def test_default_resource_ids_differ_between_emulators(tmp_path):
    # existing callers pass no resource id: each emulator still is its own resource
    with start_emulator(cert_dir=tmp_path) as first, start_emulator(cert_dir=tmp_path) as second:
        assert first.resource_id != second.resource_id
        uuid.UUID(first.resource_id)


def test_a_bad_resource_id_or_a_state_file_of_another_resource_refuses_to_start(tmp_path):
    with pytest.raises(RuntimeError) as caught:
        start_emulator(cert_dir=tmp_path, resource_id="not-a-guid")
    assert "not a GUID" in str(caught.value)
    state = tmp_path / "acs.sqlite3"
    with start_emulator("--state-file", str(state), cert_dir=tmp_path, resource_id=RESOURCE_A) as kept:
        assert kept.resource_id == RESOURCE_A
    with start_emulator("--state-file", str(state), cert_dir=tmp_path) as again:
        assert again.resource_id == RESOURCE_A  # the state file remembers its resource
    with pytest.raises(RuntimeError) as caught:
        start_emulator("--state-file", str(state), cert_dir=tmp_path, resource_id=RESOURCE_B)
    assert "differs from the resource id kept in --state-file" in str(caught.value)
