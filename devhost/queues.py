"""Queue triggers, as the Functions host runs them, against Azurite's (or any) queue service.

Like the host: messages are read with a visibility timeout, their base64 text is
decoded, the function gets a ``func.QueueMessage`` with the dequeue count; on
success the message is deleted, on failure it becomes visible again at once, and
after ``max_dequeue_count`` failures it moves to ``<queue>-poison``.
Development and tests only; in Azure the host does this.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerQueueMessage  # what the worker hands a queue trigger
from azure.storage.queue.aio import QueueClient

logger = logging.getLogger("devhost.queues")

QueueFunction = Callable[[func.QueueMessage], Awaitable[Any] | Any]


@dataclass
class QueueRunStats:
    processed: int = 0
    failed: int = 0
    poisoned: int = 0


class QueueTriggerRunner:
    def __init__(
        self,
        connection_string: str,
        queue_name: str,
        function: QueueFunction,
        *,
        max_dequeue_count: int = 5,
        visibility_timeout: int = 300,
    ) -> None:
        self._queue = QueueClient.from_connection_string(connection_string, queue_name)
        self._poison = QueueClient.from_connection_string(connection_string, f"{queue_name}-poison")
        self._function = function
        self._max_dequeue_count = max_dequeue_count
        self._visibility_timeout = visibility_timeout
        self.stats = QueueRunStats()

    async def _ensure_queues(self) -> None:
        for client in (self._queue, self._poison):
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass

    async def run_once(self, max_messages: int = 1) -> int:
        """Receive up to ``max_messages`` visible messages and run the function on each; how many were received."""
        await self._ensure_queues()
        received = 0
        async for message in self._queue.receive_messages(
            messages_per_page=max_messages, max_messages=max_messages, visibility_timeout=self._visibility_timeout
        ):
            received += 1
            await self._handle(message)
        return received

    async def _handle(self, message: Any) -> None:
        try:
            body = base64.b64decode(message.content, validate=True)
        except (binascii.Error, ValueError, TypeError):
            body = (message.content or "").encode()
        queue_message = TriggerQueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            pop_receipt=message.pop_receipt,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
        )
        try:
            result = self._function(queue_message)
            if inspect.isawaitable(result):
                await result
        except Exception as error:  # noqa: BLE001 - like the host: log, retry, poison
            self.stats.failed += 1
            logger.warning(
                "queue function failed on message %s (dequeue %d): %s", message.id, message.dequeue_count, type(error).__name__
            )
            if message.dequeue_count >= self._max_dequeue_count:
                await self._poison.send_message(message.content)
                await self._queue.delete_message(message)
                self.stats.poisoned += 1
            else:
                await self._queue.update_message(message, visibility_timeout=0)
            return
        await self._queue.delete_message(message)
        self.stats.processed += 1

    async def drain(self, *, idle_polls: int = 1, poll_interval: float = 0.2, max_polls: int = 10_000) -> QueueRunStats:
        """Process until the queue has shown nothing visible ``idle_polls`` times in a row (bounded)."""
        idle = 0
        for _ in range(max_polls):
            if await self.run_once():
                idle = 0
                continue
            idle += 1
            if idle >= idle_polls:
                break
            await asyncio.sleep(poll_interval)
        return self.stats

    async def serve(self, stop: asyncio.Event, poll_interval: float = 1.0) -> None:
        """Poll until ``stop`` is set (devhost under ``make run``)."""
        while not stop.is_set():
            try:
                got = await self.run_once()
            except Exception as error:  # noqa: BLE001 - a storage hiccup must not kill the poller
                logger.warning("queue poll failed: %s", type(error).__name__)
                got = 0
            if not got:
                try:
                    await asyncio.wait_for(stop.wait(), poll_interval)
                except TimeoutError:
                    pass

    async def close(self) -> None:
        await self._queue.close()
        await self._poison.close()
