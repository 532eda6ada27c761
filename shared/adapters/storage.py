"""Azure Storage plumbing for every table and queue the app uses, written once.

Owns: the client factory (a connection string locally, the managed identity with
service URIs in Azure), retry and timeout options (an outage must surface in seconds
as 503 + ``Retry-After``, not after minutes of retries), "create the table or queue
once per process", and turning SDK failures into :class:`UnavailableError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableEntity
from azure.data.tables.aio import TableClient

from shared.adapters.credentials import entra_credential
from shared.adapters.lifecycle import AsyncClosable
from shared.domain.errors import SettingsError, UnavailableError
from shared.settings import StorageSettings

if TYPE_CHECKING:  # the queue SDK is imported where queue clients are built: HTTP cold starts never need it
    from azure.storage.queue.aio import QueueClient

logger = logging.getLogger(__name__)

#: An outage should surface in seconds (as 503 + Retry-After), not after minutes of retries.
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}
#: Retry-After for a storage outage when the service did not say.
UNAVAILABLE_RETRY_AFTER = 5


def unavailable(error: Exception, what: str) -> UnavailableError:
    """A storage failure as the domain sees it, honouring the service's Retry-After when it gave one."""
    retry_after = UNAVAILABLE_RETRY_AFTER
    response = getattr(error, "response", None)
    if response is not None:
        try:
            retry_after = int(response.headers.get("Retry-After", retry_after))
        except (TypeError, ValueError):
            pass
    logger.warning("%s storage failed: %s", what, type(error).__name__)
    return UnavailableError(f"{what.capitalize()} storage is unavailable; retry later.", retry_after=retry_after)


class CreateOnce:
    """Run a "create if missing" call once per process, however many requests race to it."""

    def __init__(self, create: Callable[[], Awaitable[object]]) -> None:
        self._create = create
        self._done = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self._done:
            return
        async with self._lock:
            if self._done:
                return
            try:
                await self._create()
            except ResourceExistsError:
                pass
            self._done = True


class TableAdapter(AsyncClosable):
    """One Azure Table behind a domain port: the client and the credential it owns, the table created
    once, and every SDK failure turned into :class:`UnavailableError` in one place (:meth:`_reaching`).
    """

    #: what the 503's message names ("<what> storage is unavailable")
    what = "table"

    def __init__(self, table: TableClient, credential: AsyncTokenCredential | None = None) -> None:
        self._table = table
        self._credential = credential
        self._created = CreateOnce(table.create_table)

    @asynccontextmanager
    async def _reaching(self) -> AsyncIterator[None]:
        """Storage calls inside run against an existing table; a failure leaves as UnavailableError."""
        try:
            await self._created.ensure()
            yield
        except AzureError as error:
            raise unavailable(error, self.what) from None

    async def _entity(self, partition: str, row: str) -> TableEntity | None:
        """One row by its keys, or None."""
        async with self._reaching():
            try:
                return await self._table.get_entity(partition, row)
            except ResourceNotFoundError:
                return None

    async def close(self) -> None:
        await self._table.close()
        if self._credential is not None:
            await self._credential.close()


def storage_credential(settings: StorageSettings, env: Mapping[str, str]) -> AsyncTokenCredential:
    """The managed identity (or developer login) for storage service URIs."""
    return entra_credential(settings.managed_identity_client_id, env)


def table_client(
    settings: StorageSettings, table_name: str, env: Mapping[str, str]
) -> tuple[TableClient, AsyncTokenCredential | None]:
    """A client for one table, and the credential it owns (None with a connection string)."""
    if settings.connection_string:
        return TableClient.from_connection_string(settings.connection_string, table_name, **CLIENT_OPTIONS), None
    if settings.table_endpoint is None:  # load_storage_settings guarantees one of the two
        raise SettingsError("AzureWebJobsStorage__tableServiceUri", "is required when AzureWebJobsStorage is not set")
    credential = storage_credential(settings, env)
    return TableClient(settings.table_endpoint, table_name, credential=credential, **CLIENT_OPTIONS), credential


def queue_clients(
    settings: StorageSettings, queue_names: Sequence[str], env: Mapping[str, str]
) -> tuple[list[QueueClient], AsyncTokenCredential | None]:
    """Clients for some queues (sharing one credential), and that credential (None with a connection string)."""
    from azure.storage.queue.aio import QueueClient

    if settings.connection_string:
        connection_string = settings.connection_string
        return [QueueClient.from_connection_string(connection_string, name, **CLIENT_OPTIONS) for name in queue_names], None
    if settings.queue_endpoint is None:
        raise SettingsError(
            "AzureWebJobsStorage__queueServiceUri", "is required for the revocation queue when storage uses a managed identity"
        )
    credential = storage_credential(settings, env)
    endpoint = settings.queue_endpoint
    return [QueueClient(endpoint, name, credential=credential, **CLIENT_OPTIONS) for name in queue_names], credential
