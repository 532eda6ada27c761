"""The revocation sweep's timer and queue triggers, as one Blueprint."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.composition import Services
from shared.domain.revocation.work import decode_batch

logger = logging.getLogger("shared.revocation")


def revocation_triggers(services: Services) -> func.Blueprint:
    """``revocation_sweep`` on ``%REVOCATION_SCHEDULE%`` and ``revocation_batch`` on ``%REVOCATION_QUEUE_NAME%``."""
    bp = func.Blueprint()

    @bp.function_name("revocation_sweep")
    @bp.timer_trigger(arg_name="timer", schedule="%REVOCATION_SCHEDULE%", run_on_startup=False, use_monitor=True)
    async def revocation_sweep(timer: func.TimerRequest) -> None:
        """Every REVOCATION_SCHEDULE: do recorded requests, then the max-session-age and retention policies."""
        if timer.past_due:
            logger.info("revocation sweep is running late (past due); it simply picks up where the last run stopped")
        await services.sweeper().run_timer(past_due=timer.past_due)

    @bp.function_name("revocation_batch")
    @bp.queue_trigger(arg_name="message", queue_name="%REVOCATION_QUEUE_NAME%", connection="AzureWebJobsStorage")
    async def revocation_batch(message: func.QueueMessage) -> None:
        """A batch fanned out by the sweep when its backlog is bigger than one run.

        A malformed message raises, so the host retries it and then moves it to the poison queue.
        """
        try:
            items = decode_batch(message.get_body())
        except (ValueError, UnicodeDecodeError) as error:
            logger.error("revocation batch message is malformed (%s); the host will move it to the poison queue", error)
            raise
        if message.dequeue_count and message.dequeue_count > 1:
            logger.info("revocation batch delivered %d times; its items are idempotent", message.dequeue_count)
        await services.sweeper().run_batch(items)

    return bp
