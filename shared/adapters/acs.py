"""The one place that talks to Azure Communication Services Identity.

Why the async client: every function in this app is ``async def``, and the
Functions Python worker runs those on one event loop per worker process, so
many requests share one ``aiohttp`` connection pool without tying up the small
thread pool that sync functions would each hold for a whole ACS round trip.

The client (and its credential) is created once per worker process by the
composition root and reused by every invocation: a new client per request would
mean a new TLS connection and, with managed identity, a new Entra ID token
request each time.

SDK exceptions are translated into :mod:`shared.domain.errors` here, by tables
(ACS's error code first, then the HTTP status), so nothing above this module sees
request URLs, headers or keys.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.identity.aio import CommunicationIdentityClient
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import AsyncRetryPolicy
from azure.core.pipeline.transport import AioHttpTransport

from shared.adapters.credentials import entra_credential
from shared.adapters.lifecycle import AsyncClosable
from shared.domain.errors import (
    ForeignIdentityError,
    InvalidRequestError,
    MisconfiguredError,
    NotFoundError,
    ServiceError,
    SettingsError,
    ThrottledError,
    UnavailableError,
)
from shared.domain.metrics import ACS_ERRORS, Metrics, NoMetrics
from shared.domain.models import IssuedToken
from shared.settings import AcsSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Fail fast: a frontend is waiting. Retries still happen (azure-core honours
#: Retry-After), but an outage surfaces in seconds and is reported as 503.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 4,
    "connection_timeout": 5,
    "read_timeout": 20,
}
DEFAULT_THROTTLE_RETRY_AFTER = 30
#: the longest Retry-After the user-facing client waits out itself before answering the caller
MAX_RETRY_AFTER_SECONDS = 1.0
_jitter = random.Random()  # noqa: S311 - spreads retries; nothing secret
DEFAULT_UNAVAILABLE_RETRY_AFTER = 5


def _as_utc(expires_on: datetime | str | float) -> datetime:
    """The SDK hands back ACS's raw ``expiresOn`` string (0 to 7 fractional digits), whatever its type hint says."""
    if isinstance(expires_on, str):
        expires_on = datetime.fromisoformat(expires_on)
    if isinstance(expires_on, datetime):
        return expires_on if expires_on.tzinfo else expires_on.replace(tzinfo=UTC)
    return datetime.fromtimestamp(expires_on, tz=UTC)


def _retry_after(error: HttpResponseError, default: int) -> int:
    headers = getattr(error.response, "headers", None) or {}
    if headers:
        for header in ("Retry-After", "retry-after-ms", "x-ms-retry-after-ms"):
            raw = headers.get(header)
            if not raw:
                continue
            try:
                seconds = float(raw) / (1000 if header.endswith("-ms") else 1)
            except ValueError:
                continue  # an HTTP date: fall back to the default
            return max(1, int(seconds + 0.999))
    return default


def _acs_code(error: HttpResponseError) -> str | None:
    """ACS's own error code from the JSON body (``{"error": {"code": ...}}``), if any."""
    code = getattr(getattr(error, "error", None), "code", None)
    return str(code) if code else None


def _service_message(error: HttpResponseError) -> str:
    """ACS's own error sentence (it carries no secrets), without the SDK's request dump."""
    message = getattr(getattr(error, "error", None), "message", None)
    return str(message) if message else f"ACS answered {error.status_code}"


def _throttled(error: HttpResponseError) -> ServiceError:
    # Spread the clients' retries over up to half as long again: thousands of clients told the same
    # Retry-After would come back in the same second and be throttled together again.
    retry_after = _retry_after(error, DEFAULT_THROTTLE_RETRY_AFTER)
    jitter = _jitter.randint(0, max(1, retry_after // 2))
    return ThrottledError("ACS is throttling requests; retry later.", retry_after=retry_after + jitter)


class AnswerFastRetryPolicy(AsyncRetryPolicy[Any, Any]):
    """The user-facing client's retries: brief ones only, never a wait the caller would notice.

    azure-core retries any status that carries Retry-After, after waiting that long (ACS's 429s say
    up to 30 s, three tries). A frontend is waiting, and during a sign-in storm thousands are: any
    answer asking for a wait over MAX_RETRY_AFTER_SECONDS (or a 429 without Retry-After) goes back at once
    (429/503 with the Retry-After its client honours), instead of holding the function and a
    connection through the waits. Short outages (5xx, connection errors) are still retried briefly.
    """

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        retry_after = self.get_retry_after(response)
        if response.http_response.status_code == 429 and retry_after is None:
            return False  # no hint: a throttled resource, answer at once
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
            return False
        return bool(super().is_retry(settings, response))


def _unavailable(error: HttpResponseError) -> ServiceError:
    return UnavailableError("ACS is unavailable; retry later.", retry_after=_retry_after(error, DEFAULT_UNAVAILABLE_RETRY_AFTER))


def _credentials_rejected(_: HttpResponseError) -> ServiceError:
    return MisconfiguredError(
        "ACS rejected this service's credentials; check ACS_CONNECTION_STRING or the managed identity's role."
    )


def _bad_request(error: HttpResponseError) -> ServiceError:
    target = getattr(getattr(error, "error", None), "target", None)
    return InvalidRequestError(_service_message(error), target=target)


def _foreign_identity(_: HttpResponseError) -> ServiceError:
    return ForeignIdentityError("The ACS identity belongs to another ACS resource.")


def _teams_token_rejected(_: HttpResponseError) -> ServiceError:
    return InvalidRequestError("The Teams user's Entra ID token was rejected by ACS.", code="invalid_teams_token")


#: The Teams exchange's fields as ACS names them (its ``target``, either case) -> this API's field and what to check.
TEAMS_FIELDS: dict[str, tuple[str, str]] = {
    "appid": (
        "clientId",
        "clientId must be the application (client) id of the Entra app the Teams token was requested by "
        "(the token's appid or azp claim).",
    ),
    "userid": (
        "userObjectId",
        "userObjectId must be the Entra object id of the signed-in Teams user (the token's oid claim); "
        "a common mistake is sending the tenant id (tid) or the app's id instead.",
    ),
}


def _validation_error(error: HttpResponseError) -> ServiceError:
    """ACS's 400 ValidationError: for the Teams exchange's appId/userId, say which of our fields is wrong and why."""
    target = getattr(getattr(error, "error", None), "target", None)
    field = TEAMS_FIELDS.get(str(target or "").lower())
    if field is None:
        return _bad_request(error)
    name, hint = field
    return InvalidRequestError(f"ACS refused {name}: {_service_message(error)} {hint}", code="teams_token_mismatch", target=name)


#: ACS error codes that say more than their status (checked first).
ERRORS_BY_ACS_CODE: dict[str, Callable[[HttpResponseError], ServiceError]] = {
    # 401 for the Teams user's Entra ID token, not for our own credentials.
    "InvalidAccessToken": _teams_token_rejected,
    # 400 with a target; for the Teams exchange, appId/userId that do not fit the token.
    "ValidationError": _validation_error,
    # 401 for an identity of another ACS resource: not our credentials (Azure/azure-sdk-assets,
    # python/communication/azure-communication-identity recordings; emulator/references.py).
    "IdentityNotOwned": _foreign_identity,
}
#: Then the HTTP status; anything else 4xx is an invalid request, anything else 5xx an outage.
ERRORS_BY_STATUS: dict[int, Callable[[HttpResponseError], ServiceError]] = {
    400: _bad_request,
    401: _credentials_rejected,
    403: _credentials_rejected,
    408: _unavailable,
    429: _throttled,
}


def translate_error(error: Exception) -> ServiceError:
    """Map an SDK/transport exception to a domain error (never re-raise SDK text)."""
    if isinstance(error, ResourceNotFoundError):
        return NotFoundError("The ACS identity does not exist (it may have been deleted).")
    if isinstance(error, ClientAuthenticationError) and error.status_code is None:
        # Raised by the credential itself: no token for ACS could be acquired.
        return MisconfiguredError("Could not get an Entra ID token for ACS; check the managed identity and its role.")
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        by_code = ERRORS_BY_ACS_CODE.get(_acs_code(error) or "")
        if by_code is not None:
            return by_code(error)
        by_status = ERRORS_BY_STATUS.get(error.status_code)
        if by_status is not None:
            return by_status(error)
        if error.status_code >= 500:
            return _unavailable(error)
        return InvalidRequestError(_service_message(error))
    if isinstance(error, (ServiceRequestError, ServiceResponseError, OSError, TimeoutError)):
        return UnavailableError("ACS could not be reached; retry later.", retry_after=DEFAULT_UNAVAILABLE_RETRY_AFTER)
    if isinstance(error, AzureError):
        return UnavailableError("ACS call failed; retry later.", retry_after=DEFAULT_UNAVAILABLE_RETRY_AFTER)
    raise error  # a bug, not an upstream failure: let the HTTP layer log it with a correlation id


def transport_trusting(ca_bundle: str) -> AioHttpTransport:
    """An HTTP transport that trusts ``ca_bundle`` (the emulator's certificate), built once.

    Not ``connection_verify=<path>``: azure-core then builds a new SSLContext for every
    request, so aiohttp cannot reuse connections and pays a TLS handshake each time
    (measured: 4.1 ms instead of 1.6 ms per call against the emulator). Call it from
    the event loop that will use the client.
    """
    context = ssl.create_default_context(cafile=ca_bundle)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
    return AioHttpTransport(session=session, session_owner=True)


def create_client(
    settings: AcsSettings, env: Mapping[str, str], *, fast_answers: bool = False, **overrides: Any
) -> tuple[CommunicationIdentityClient, AsyncTokenCredential | None]:
    """Build the SDK client from settings: connection string first, else endpoint + Entra ID."""
    options = {**CLIENT_OPTIONS, **overrides}
    if fast_answers:
        retry_options = {key: value for key, value in options.items() if key.startswith("retry_")}
        options["retry_policy"] = AnswerFastRetryPolicy(**retry_options)
    if settings.ca_bundle:
        options["transport"] = transport_trusting(settings.ca_bundle)
    if settings.connection_string:
        return CommunicationIdentityClient.from_connection_string(settings.connection_string, **options), None
    if settings.endpoint is None:  # load_acs_settings guarantees one of the two
        raise SettingsError("ACS_ENDPOINT", "is required when ACS_CONNECTION_STRING is not set")
    credential = entra_credential(settings.managed_identity_client_id, env)
    return CommunicationIdentityClient(settings.endpoint, credential, **options), credential


class AcsIdentityClient(AsyncClosable):
    """:class:`shared.domain.ports.AcsIdentityService` on the official async SDK client."""

    def __init__(
        self,
        client: CommunicationIdentityClient,
        credential: AsyncTokenCredential | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._credential = credential
        #: counts failed calls (ACS_ERRORS by operation and domain error code): throttling and outages by operation
        self._metrics: Metrics = metrics or NoMetrics()

    @classmethod
    def from_settings(
        cls, settings: AcsSettings, env: Mapping[str, str], *, metrics: Metrics | None = None, **overrides: Any
    ) -> AcsIdentityClient:
        """A client from settings; ``overrides`` are azure-core options (the sweep's turns retries off)."""
        client, credential = create_client(settings, env, **overrides)
        return cls(client, credential, metrics)

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one SDK call; a failure is counted and raised as a domain error.

        A failure is counted once per call, after azure-core's own retries: with the user-facing
        client's two retries, a 429 that a retry got past is not counted; the sweep's client
        retries nothing, so there every 429 is one count.
        """
        try:
            return await call()
        except ServiceError as error:
            self._count_failure(operation, error)
            raise
        except Exception as error:  # noqa: BLE001 - translated to a domain error, or re-raised as a bug
            domain_error = translate_error(error)
            logger.warning("ACS %s failed: %s (%s)", operation, domain_error.code, type(error).__name__)
            self._count_failure(operation, domain_error)
            raise domain_error from None

    def _count_failure(self, operation: str, error: ServiceError) -> None:
        self._metrics.add(ACS_ERRORS, attributes={"operation": operation, "code": error.code})

    async def create_identity(self) -> str:
        user = await self._call("create_identity", self._client.create_user)
        return str(user.properties["id"])

    async def create_identity_with_token(
        self, scopes: Sequence[str], expires_in_minutes: int | None = None
    ) -> tuple[str, IssuedToken]:
        kwargs = _expiry_kwargs(expires_in_minutes)
        user, token = await self._call(
            "create_identity_with_token", lambda: self._client.create_user_and_token(list(scopes), **kwargs)
        )
        return str(user.properties["id"]), IssuedToken(token.token, _as_utc(token.expires_on))

    async def issue_token(self, acs_user_id: str, scopes: Sequence[str], expires_in_minutes: int | None = None) -> IssuedToken:
        kwargs = _expiry_kwargs(expires_in_minutes)
        token = await self._call(
            "issue_token", lambda: self._client.get_token(CommunicationUserIdentifier(acs_user_id), list(scopes), **kwargs)
        )
        return IssuedToken(token.token, _as_utc(token.expires_on))

    async def revoke_tokens(self, acs_user_id: str) -> None:
        await self._call("revoke_tokens", lambda: self._client.revoke_tokens(CommunicationUserIdentifier(acs_user_id)))

    async def delete_identity(self, acs_user_id: str) -> None:
        await self._call("delete_identity", lambda: self._client.delete_user(CommunicationUserIdentifier(acs_user_id)))

    async def exchange_teams_token(self, teams_token: str, client_id: str, user_object_id: str) -> IssuedToken:
        token = await self._call(
            "exchange_teams_token",
            lambda: self._client.get_token_for_teams_user(teams_token, client_id, user_object_id),
        )
        return IssuedToken(token.token, _as_utc(token.expires_on))

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()


def _expiry_kwargs(expires_in_minutes: int | None) -> dict[str, timedelta]:
    return {} if expires_in_minutes is None else {"token_expires_in": timedelta(minutes=expires_in_minutes)}
