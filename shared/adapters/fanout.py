"""The revocation queue in Azure Storage: delayed batch messages and the poison queue's length.

Batches are scheduled by the sweep with visibility delays spaced at its rate, so
however many instances the platform starts for the queue trigger, batches become
visible one interval apart. The Functions host moves a message that failed
``maxDequeueCount`` times (5) to ``<queue>-poison``; its length is reported in every
run's summary. Nothing is lost with a poison message: ledger requests come back when
their lease expires, policy items when the next planning run finds them again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.adapters.lifecycle import AsyncClosable
from shared.adapters.storage import CreateOnce, queue_clients, unavailable
from shared.settings import StorageSettings

if TYPE_CHECKING:  # imported where the clients are built: the HTTP functions never need it
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.queue.aio import QueueClient

#: Storage queue messages live at most 7 days by default; stay well inside that.
MAX_DELAY_SECONDS = 6 * 24 * 3600


def host_encoding(text: str) -> str:
    """What the Functions host expects in a queue message by default: base64 of the UTF-8 text."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class QueueFanout(AsyncClosable):
    """:class:`shared.domain.ports.BatchQueue` on an Azure Storage queue and its poison queue."""

    def __init__(self, queue: QueueClient, poison: QueueClient, credential: AsyncTokenCredential | None = None) -> None:
        self._queue = queue
        self._poison = poison
        self._credential = credential
        self._created = CreateOnce(queue.create_queue)

    @classmethod
    def from_settings(cls, settings: StorageSettings, queue_name: str, env: Mapping[str, str]) -> QueueFanout:
        (queue, poison), credential = queue_clients(settings, (queue_name, f"{queue_name}-poison"), env)
        return cls(queue, poison, credential)

    async def send(self, message: str, delay_seconds: float) -> None:
        delay = int(min(max(0.0, delay_seconds), MAX_DELAY_SECONDS))
        try:
            await self._created.ensure()
            await self._queue.send_message(host_encoding(message), visibility_timeout=delay or None)
        except AzureError as error:
            raise unavailable(error, "queue") from None

    async def poison_count(self) -> int:
        """Approximate number of batches the host gave up on (0 when the poison queue does not exist)."""
        try:
            properties = await self._poison.get_queue_properties()
        except ResourceNotFoundError:
            return 0
        except AzureError:
            return -1  # unknown: reported as such rather than failing the run
        return int(properties.approximate_message_count or 0)

    async def close(self) -> None:
        await self._queue.close()
        await self._poison.close()
        if self._credential is not None:
            await self._credential.close()
