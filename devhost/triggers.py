"""Timer and queue triggers running by themselves, as under the real host (``make run``).

Off by default (tests and scripts run them on demand through ``POST /admin/functions/<name>``);
``DEVHOST_RUN_TRIGGERS=true`` turns them on. Timers follow their six-field NCRONTAB schedule
in UTC (``%SETTING%`` resolved from the environment, as the host resolves app settings);
queue triggers poll their queue through :class:`devhost.queues.QueueTriggerRunner`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from devhost.routing import FunctionTable, OtherFunction

logger = logging.getLogger("devhost.triggers")


def resolve(value: str, env: Mapping[str, str]) -> str:
    """``%NAME%`` -> the app setting's value (the host does this for binding expressions)."""
    if len(value) > 2 and value.startswith("%") and value.endswith("%"):
        resolved = env.get(value[1:-1], "").strip()
        if not resolved:
            raise ValueError(f"app setting {value[1:-1]} is not set (the binding uses {value})")
        return resolved
    return value


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The next time a six-field NCRONTAB (seconds first) fires after ``after`` (UTC)."""
    from croniter import croniter  # dev-only dependency: the real host has its own scheduler

    if len(schedule.split()) != 6:
        raise ValueError(f"not a six-field NCRONTAB schedule: {schedule!r}")
    return croniter(schedule, after, second_at_beginning=True).get_next(datetime)


async def _call(function: OtherFunction, argument: Any) -> None:
    from devhost.server import call_function

    await call_function(function.function, {function.param_name: argument})


async def run_timer(function: OtherFunction, schedule: str, stop: asyncio.Event) -> None:
    from azure.functions.timer import TimerRequest

    if function.binding.get("run_on_startup"):
        await _call(function, TimerRequest(past_due=False))
    while not stop.is_set():
        now = datetime.now(UTC)
        due = next_occurrence(schedule, now)
        try:
            await asyncio.wait_for(stop.wait(), (due - now).total_seconds())
            return
        except TimeoutError:
            pass
        started = datetime.now(UTC)
        try:
            await _call(function, TimerRequest(past_due=(started - due).total_seconds() > 1))
        except Exception:
            logger.exception("timer function %s raised", function.name)


async def run_queue(function: OtherFunction, connection: str, queue_name: str, stop: asyncio.Event) -> None:
    from devhost.queues import QueueTriggerRunner

    async def handler(message: Any) -> None:
        await _call(function, message)

    runner = QueueTriggerRunner(connection, queue_name, handler)
    try:
        await runner.serve(stop)
    finally:
        await runner.close()


def start_background_triggers(
    table: FunctionTable, stop: asyncio.Event, env: Mapping[str, str] | None = None
) -> list[asyncio.Task[None]]:
    """One task per timer and queue function; they end when ``stop`` is set."""
    env = os.environ if env is None else env
    tasks: list[asyncio.Task[None]] = []
    for function in table.others.values():
        try:
            if function.trigger_type == "TimerTrigger":
                schedule = resolve(str(function.binding["schedule"]), env)
                next_occurrence(schedule, datetime.now(UTC))  # fail now on a bad schedule, as the host does
                tasks.append(asyncio.create_task(run_timer(function, schedule, stop), name=f"timer:{function.name}"))
                logger.info("timer %s: schedule %s (UTC)", function.name, schedule)
            elif function.trigger_type == "QueueTrigger":
                connection = env.get(str(function.binding.get("connection") or "AzureWebJobsStorage"), "")
                if "=" not in connection:
                    raise ValueError("its storage connection is not a connection string; not polling")
                queue_name = resolve(str(function.binding["queue_name"]), env)
                tasks.append(
                    asyncio.create_task(run_queue(function, connection, queue_name, stop), name=f"queue:{function.name}")
                )
                logger.info("queue %s: polling %s", function.name, queue_name)
        except (ValueError, KeyError) as error:
            logger.error("%s is not running by itself: %s", function.name, error)
    return tasks
