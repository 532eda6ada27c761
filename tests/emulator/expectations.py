"""What the emulator must answer, checked the same way wherever a test needs it."""

from __future__ import annotations

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.core.exceptions import ClientAuthenticationError

#: ACS's answer to an identity of another resource (recorded traffic: emulator/README.md, coverage row 10)
NOT_OWNED_MESSAGE = "Provided identity doesn't belong to the resource."


def assert_refused_as_not_owned(client: CommunicationIdentityClient, acs_user_id: str) -> None:
    """get_token, revoke_tokens and delete_user of ``acs_user_id`` each fail as the SDK sees ACS's 401 IdentityNotOwned."""
    foreign = CommunicationUserIdentifier(acs_user_id)
    for operation in (
        lambda: client.get_token(foreign, ["voip"]),
        lambda: client.revoke_tokens(foreign),
        lambda: client.delete_user(foreign),
    ):
        with pytest.raises(ClientAuthenticationError) as caught:
            operation()
        assert caught.value.status_code == 401
        assert caught.value.error is not None
        assert (caught.value.error.code, caught.value.error.message) == ("IdentityNotOwned", NOT_OWNED_MESSAGE)
