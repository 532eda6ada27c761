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
    yield CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path)
    )


@pytest.fixture(autouse=True)
def clean_faults(request: pytest.FixtureRequest):
    """After each test that used the emulator, reset it (faults, limits, counters); unit tests start none."""
    yield
    if "emulator" in request.fixturenames or request.node.get_closest_marker("integration"):
        request.getfixturevalue("emulator").reset()
