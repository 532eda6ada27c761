"""shared.adapters.acs against the emulator: every operation, and SDK failures mapped to domain errors."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from localdev.emulator_process import start_emulator
from shared.adapters import acs
from shared.domain.errors import InvalidRequestError, MisconfiguredError, NotFoundError, ThrottledError, UnavailableError
from shared.domain.metrics import ACS_ERRORS
from shared.settings import load_acs_settings
from tests.support import REPO_ROOT, run_for_json
from tests.support.metrics import MetricCall, RecordingMetrics

ROOT = REPO_ROOT
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with start_emulator(cert_dir=tmp_path_factory.mktemp("cert")) as process:
        yield process


@pytest.fixture
async def service(emulator):
    settings = load_acs_settings({"ACS_CONNECTION_STRING": emulator.connection_string, "ACS_CA_BUNDLE": str(emulator.cert_path)})
    wrapper = acs.AcsIdentityClient.from_settings(settings, {})
    yield wrapper
    await wrapper.close()
    emulator.reset()


async def test_quickstart_operations(service, emulator):
    identity = await service.create_identity()
    token = await service.issue_token(identity, ["voip"], 60)
    assert token.expires_on.tzinfo is not None
    assert emulator.validate(token.token)["valid"] is True
    await service.revoke_tokens(identity)
    assert emulator.validate(token.token)["reason"] == "revoked"
    await service.delete_identity(identity)
    with pytest.raises(NotFoundError):
        await service.issue_token(identity, ["voip"])


async def test_create_with_token(service, emulator):
    identity, token = await service.create_identity_with_token(["chat", "voip"], 120)
    verdict = emulator.validate(token.token)
    assert verdict["communicationUserId"] == identity and verdict["scopes"] == ["chat", "voip"]


async def test_acs_validation_error_becomes_invalid_request(service):
    identity = await service.create_identity()
    with pytest.raises(InvalidRequestError) as caught:
        await service.issue_token(identity, ["voip"], 30)
    assert caught.value.target == "ExpiresInMinutes"
    assert "[60, 1440]" in caught.value.message


async def test_persistent_throttling_becomes_throttled_with_retry_after(service, emulator):
    identity = await service.create_identity()
    emulator.set_faults(throttleNext=10, retryAfterSeconds=1)
    with pytest.raises(ThrottledError) as caught:
        await service.issue_token(identity, ["voip"])
    assert caught.value.retry_after in (1, 2)  # ACS's Retry-After plus a jitter of up to max(1 s, half of it)
    assert emulator.stats()["statuses"]["issue:429"] == 3  # the first try and two retries


async def test_outage_becomes_unavailable(service, emulator):
    emulator.set_faults(unavailableNext=10, retryAfterSeconds=1)
    with pytest.raises(UnavailableError) as caught:
        await service.create_identity()
    assert caught.value.retry_after >= 1


async def test_failed_calls_are_counted_by_operation_and_domain_error_code(emulator):
    """ACS_ERRORS: one count per failed call, after the user-facing client's retries; successes are not counted."""
    settings = load_acs_settings({"ACS_CONNECTION_STRING": emulator.connection_string, "ACS_CA_BUNDLE": str(emulator.cert_path)})
    metrics = RecordingMetrics()
    async with acs.AcsIdentityClient.from_settings(settings, {}, metrics=metrics) as service:
        identity = await service.create_identity()
        await service.issue_token(identity, ["voip"])
        emulator.set_faults(throttleNext=1, retryAfterSeconds=1)
        await service.issue_token(identity, ["voip"])  # one 429, retried by azure-core: the call succeeded
        assert metrics.calls == []
        emulator.set_faults(throttleNext=10, retryAfterSeconds=1)
        with pytest.raises(ThrottledError):
            await service.revoke_tokens(identity)
        emulator.set_faults(throttleNext=0)
        await service.delete_identity(identity)
        with pytest.raises(NotFoundError):
            await service.issue_token(identity, ["voip"])
    emulator.reset()
    assert metrics.calls == [
        MetricCall("add", ACS_ERRORS, 1, {"operation": "revoke_tokens", "code": "throttled"}),
        MetricCall("add", ACS_ERRORS, 1, {"operation": "issue_token", "code": "identity_not_found"}),
    ]


async def test_the_sweeps_client_counts_every_throttle(emulator):
    """The sweep's client retries nothing (retry_total=0), so each 429 ACS answers it is one count."""
    settings = load_acs_settings({"ACS_CONNECTION_STRING": emulator.connection_string, "ACS_CA_BUNDLE": str(emulator.cert_path)})
    metrics = RecordingMetrics()
    async with acs.AcsIdentityClient.from_settings(settings, {}, metrics=metrics, retry_total=0) as sweep_client:
        identity = await sweep_client.create_identity()
        emulator.set_faults(throttleNext=1, retryAfterSeconds=1)
        with pytest.raises(ThrottledError):
            await sweep_client.revoke_tokens(identity)
    emulator.reset()
    assert metrics.named(ACS_ERRORS) == [MetricCall("add", ACS_ERRORS, 1, {"operation": "revoke_tokens", "code": "throttled"})]


async def test_wrong_key_is_misconfiguration_and_leaks_nothing(emulator):
    bad = emulator.connection_string.replace(emulator.access_key, "d3Jvbmcga2V5IGZvciB0aGUgZW11bGF0b3I=")
    settings = load_acs_settings({"ACS_CONNECTION_STRING": bad, "ACS_CA_BUNDLE": str(emulator.cert_path)})
    wrapper = acs.AcsIdentityClient.from_settings(settings, {})
    with pytest.raises(MisconfiguredError) as caught:
        await wrapper.create_identity()
    assert "d3Jvbmc" not in str(caught.value) and caught.value.__cause__ is None
    await wrapper.close()


async def test_unreachable_acs_is_unavailable(tmp_path):
    settings = load_acs_settings({"ACS_CONNECTION_STRING": "endpoint=https://127.0.0.1:9/;accesskey=a2V5"})
    wrapper = acs.AcsIdentityClient.from_settings(settings, {})
    with pytest.raises(UnavailableError):
        await wrapper.create_identity()
    await wrapper.close()


async def test_bad_teams_token_is_invalid_teams_token(service):
    with pytest.raises(InvalidRequestError) as caught:
        await service.exchange_teams_token(
            "not-a-jwt", "22222222-2222-2222-2222-222222222222", "11111111-1111-1111-1111-111111111111"
        )
    assert caught.value.code == "invalid_teams_token"


async def test_one_client_per_worker(emulator):
    from shared.composition import Services

    env = {"ACS_CONNECTION_STRING": emulator.connection_string, "ACS_CA_BUNDLE": str(emulator.cert_path)}
    async with Services(env) as services:
        service = services.acs()
        assert services.acs() is service
        identity = await service.create_identity()  # and it works from this event loop
        assert identity.startswith("8:acs:")


MANAGED_IDENTITY_SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    from shared.composition import Services

    async def main():
        services = Services()
        service = services.acs()
        identity, token = await service.create_identity_with_token(["voip"])
        again = await service.issue_token(identity, ["chat"])
        credential = type(service._credential).__name__
        await services.close()
        print(json.dumps({"identity": identity, "token": again.token, "credential": credential}))

    asyncio.run(main())
    """
)


def test_managed_identity_mode_through_shared_acs(emulator):
    """ACS_ENDPOINT + managed identity: the wrapper's Entra ID path, with the emulator as token issuer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_")}
    env.update(
        {
            "ACS_ENDPOINT": emulator.endpoint,
            "ACS_CA_BUNDLE": str(emulator.cert_path),
            "WEBSITE_INSTANCE_ID": "local-test-instance",
            "IDENTITY_ENDPOINT": emulator.control_url("msi/token"),
            "IDENTITY_HEADER": emulator.identity_header,
            "SSL_CERT_FILE": str(emulator.cert_path),  # the credential's own pipeline trusts the emulator
        }
    )
    answer = run_for_json([sys.executable, "-c", MANAGED_IDENTITY_SCRIPT], env)
    assert answer["credential"] == "ManagedIdentityCredential"
    assert emulator.validate(answer["token"])["valid"] is True


async def test_another_resources_identity_is_foreign_not_a_credential_problem(service, tmp_path):
    # Real ACS: 401 IdentityNotOwned (Azure/azure-sdk-assets, the Python SDK's recordings; emulator/references.py).
    from shared.domain.errors import ForeignIdentityError

    with start_emulator(cert_dir=tmp_path, resource_name="acs-other") as other:
        settings = load_acs_settings({"ACS_CONNECTION_STRING": other.connection_string, "ACS_CA_BUNDLE": str(other.cert_path)})
        async with acs.AcsIdentityClient.from_settings(settings, {}) as elsewhere:
            foreign = await elsewhere.create_identity()
    for call in (service.issue_token(foreign, ["voip"]), service.revoke_tokens(foreign), service.delete_identity(foreign)):
        with pytest.raises(ForeignIdentityError):
            await call
