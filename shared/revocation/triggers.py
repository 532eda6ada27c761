"""The timer and queue functions' bodies: thin, so ``function_app.py`` stays a list of triggers."""

from __future__ import annotations

import logging

from shared.revocation.fanout import decode_batch
from shared.revocation.runtime import get_sweeper
from shared.revocation.sweep import SweepSummary

logger = logging.getLogger("shared.revocation")


async def run_timer(*, past_due: bool) -> SweepSummary:
    if past_due:
        logger.info("revocation sweep is running late (past due); it simply picks up where the last run stopped")
    return await get_sweeper().run_timer(past_due=past_due)


async def run_batch(body: bytes | str, dequeue_count: int | None) -> SweepSummary:
    """Process one queue batch. A malformed message raises, so the host retries it and then poisons it."""
    try:
        items = decode_batch(body)
    except (ValueError, UnicodeDecodeError) as error:
        logger.error("revocation batch message is malformed (%s); the host will move it to the poison queue", error)
        raise
    if dequeue_count and dequeue_count > 1:
        logger.info("revocation batch delivered %d times; its items are idempotent", dequeue_count)
    return await get_sweeper().run_batch(items)
