"""Fan-out of a large sweep backlog onto an Azure Storage queue.

Batches are scheduled with visibility delays spaced at the sweep's rate, so
however many instances the platform starts for the queue trigger, batches
become visible one interval apart and the combined rate stays at the
configured share of ACS's ceiling. The Functions host moves a message that
failed ``maxDequeueCount`` times (5) to ``<queue>-poison``; its length is
reported in every run's summary. Nothing is lost with a poison message: ledger
requests come back when their lease expires, policy items when the next
planning run finds them again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from shared.errors import UnavailableError
from shared.revocation.work import WorkItem

if TYPE_CHECKING:  # imported where the clients are built: the HTTP functions never need it
    from azure.storage.queue.aio import QueueClient

MESSAGE_VERSION = 1
#: Storage queue messages live at most 7 days by default; stay well inside that.
MAX_DELAY_SECONDS = 6 * 24 * 3600


def encode_batch(items: Sequence[WorkItem]) -> str:
    """The message text: base64 of a small JSON document (the host's default queue encoding)."""
    document = {"v": MESSAGE_VERSION, "items": [item.encode() for item in items]}
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def decode_batch(body: bytes | str) -> list[WorkItem]:
    """The items of a batch message as the queue trigger hands it over (already base64-decoded)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    document: Any = json.loads(text)
    if not isinstance(document, dict) or document.get("v") != MESSAGE_VERSION or not isinstance(document.get("items"), list):
        raise ValueError("not a revocation batch message")
    return [WorkItem.decode(str(entry)) for entry in document["items"]]


def chunks(items: Iterable[WorkItem], size: int) -> Iterable[list[WorkItem]]:
    batch: list[WorkItem] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class QueueFanout:
    def __init__(self, queue: QueueClient, poison: QueueClient) -> None:
        self._queue = queue
        self._poison = poison
        self._ready = False

    @property
    def queue_name(self) -> str:
        return self._queue.queue_name

    async def _ensure_queue(self) -> None:
        if not self._ready:
            try:
                await self._queue.create_queue()
            except ResourceExistsError:
                pass
            self._ready = True

    async def send(self, items: Sequence[WorkItem], delay_seconds: float) -> None:
        delay = int(min(max(0.0, delay_seconds), MAX_DELAY_SECONDS))
        try:
            await self._ensure_queue()
            await self._queue.send_message(encode_batch(items), visibility_timeout=delay or None)
        except AzureError as error:
            raise UnavailableError(f"Queue storage failed ({type(error).__name__}); retry later.", retry_after=5) from None

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
