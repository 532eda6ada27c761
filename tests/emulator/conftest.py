"""One emulator for this folder's tests (HTTPS, default limits), plus SDK clients for it."""

from __future__ import annotations

import pytest
from azure.communication.identity import CommunicationIdentityClient

from localdev.emulator_process import start_emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with start_emulator(cert_dir=tmp_path_factory.mktemp("emulator-cert")) as process:
        yield process


@pytest.fixture
def client(emulator):
    """The unmodified sync SDK, from the emulator's connection string, trusting its certificate."""
    return CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path)
    )


@pytest.fixture(autouse=True)
def clean_faults(request: pytest.FixtureRequest):
    """After each test that used the emulator, reset it (faults, limits, counters); unit tests start none."""
    emulator = request.getfixturevalue("emulator") if request.node.get_closest_marker("integration") else None
    yield
    if emulator is not None:
        emulator.reset()


@pytest.fixture(autouse=True)
def close_sdk_clients(monkeypatch: pytest.MonkeyPatch):
    """Every sync SDK client a test builds is closed after it: each holds pooled TLS sockets.

    The sync CommunicationIdentityClient (1.5.0) has no close() of its own; its generated client does.
    """
    built: list[CommunicationIdentityClient] = []
    original = CommunicationIdentityClient.__init__

    def init(self: CommunicationIdentityClient, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(CommunicationIdentityClient, "__init__", init)
    yield
    for client in built:
        client._identity_service_client.close()
