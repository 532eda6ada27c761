"""The composition root builds each client once, from settings, and closes them all (no network needed)."""

from __future__ import annotations

from shared.composition import Services

ENV = {
    "ACS_CONNECTION_STRING": "endpoint=https://contoso.communication.azure.com/;accesskey=a2V5",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AUTH_MODE": "dev",
    "REVOKE_RATE_LIMIT_PER_HOUR": "6",
    "TOKEN_RATE_LIMIT_PER_MINUTE": "10",
}


async def test_one_of_each_per_worker_and_limits_from_settings() -> None:
    async with Services(ENV) as services:
        tokens = services.token_service()
        assert services.token_service() is tokens and services.acs() is services.acs()
        assert services.sweep_acs() is not services.acs()  # the sweep's own client: no azure-core retries
        assert (tokens._limiter.capacity, tokens._limiter.rate) == (10, 10 / 60)
        assert (tokens._revoke_limiter.capacity, tokens._revoke_limiter.rate) == (6, 6 / 3600)  # per hour, not per minute
        assert tokens._resource == services.acs_settings.resource == "contoso.communication.azure.com"
    assert services._acs is None and services._token_service is None  # closed, and rebuilt on next use
