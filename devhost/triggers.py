"""Timer and queue triggers running by themselves, as under the real host (``make run``).

Off by default (tests and scripts run them on demand through ``POST /admin/functions/<name>``);
``DEVHOST_RUN_TRIGGERS=true`` turns them on. Timers follow their six-field NCRONTAB schedule
in UTC (``%SETTING%`` resolved from the environment, as the host resolves app settings);
queue triggers poll their queue through :class:`devhost.queues.QueueTriggerRunner`.

With several devhost instances on one ``AzureWebJobsStorage`` (the fleet rig), each timer occurrence runs on
one instance, as on the platform: the timer is a singleton behind a blob lease (:mod:`devhost.singleton`).
Queue triggers run on every instance, as on the platform. Without a blob service in the connection string
(``make run``'s Azurite serves Table and Queue only) timers run unlocked, as one instance would.
Every occurrence is logged when it starts, ``timer <name>: occurrence <ISO time> past_due=<bool> instance=<id>``,
and when it ends, ``timer <name>: occurrence <ISO time> done in <n> ms instance=<id>``. An occurrence whose
instance died before it ended runs again, past due, on the instance that takes the lock over (as on the host).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost.routing import FunctionTable, OtherFunction
from devhost.singleton import HostStorage, ScheduleStatus, TimerSingleton, blob_connection_string, check_past_due, instance_id

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


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _sleep_until(moment: datetime, *events: asyncio.Event | None) -> bool:
    """Wait until ``moment``; True as soon as one of ``events`` is set instead."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events if event is not None]
    timeout = max(0.0, (moment - _utc_now()).total_seconds())
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


async def _fire(function: OtherFunction, occurrence: datetime, past_due: bool, owner: str) -> None:
    from azure.functions.timer import TimerRequest

    logger.info("timer %s: occurrence %s past_due=%s instance=%s", function.name, occurrence.isoformat(), past_due, owner)
    started = time.perf_counter()
    try:
        await _call(function, TimerRequest(past_due=past_due))
    except Exception:
        logger.exception("timer function %s raised", function.name)
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("timer %s: occurrence %s done in %.0f ms instance=%s", function.name, occurrence.isoformat(), elapsed_ms, owner)


async def _run_schedule(
    function: OtherFunction,
    schedule: str,
    stop: asyncio.Event,
    singleton: TimerSingleton | None,
    lost: asyncio.Event | None,
    owner: str,
) -> None:
    """The timer listener: past-due check on start (with the schedule monitor), then each occurrence.

    It runs until stopped or until the listener lock is lost.
    """
    monitor = singleton.monitor if singleton else None
    now = _utc_now()
    status = ScheduleStatus(last=None, next=next_occurrence(schedule, now), last_updated=now)
    if monitor is not None:
        try:
            late, status, changed = check_past_due(now, await monitor.get(), lambda moment: next_occurrence(schedule, moment))
            if changed:
                await monitor.update(status)
        except Exception as error:  # noqa: BLE001 - storage unreachable: no past-due check this time, schedule from now
            logger.warning("timer %s: could not read its schedule status (%s)", function.name, type(error).__name__)
            late = timedelta(0)
        if late > timedelta(0):
            await _fire(function, status.next, True, owner)
            status = ScheduleStatus(last=now, next=next_occurrence(schedule, now), last_updated=now)
            await monitor.update(status)
        elif function.binding.get("run_on_startup"):
            await _fire(function, now, False, owner)
    elif function.binding.get("run_on_startup"):
        await _fire(function, now, False, owner)
    while True:
        due = status.next
        if await _sleep_until(due, stop, lost):
            return
        woke = _utc_now()
        if singleton is not None and not await singleton.lock.confirm():
            if lost is not None:
                lost.set()
            return
        await _fire(function, due, (woke - due).total_seconds() > 1, owner)
        invoked = max(due, woke)  # like the host: the scheduled time when woken early, else the wake-up time
        status = ScheduleStatus(last=invoked, next=next_occurrence(schedule, invoked), last_updated=invoked)
        if monitor is not None:
            await monitor.update(status)


async def run_timer(function: OtherFunction, schedule: str, stop: asyncio.Event, storage: HostStorage | None = None) -> None:
    """Run the timer until ``stop``; with ``storage``, only while this instance holds the timer's listener lock."""
    if storage is None:
        await _run_schedule(function, schedule, stop, None, None, instance_id(os.environ))
        return
    singleton = storage.for_timer(function.name, bool(function.binding.get("use_monitor", True)))
    try:
        while not stop.is_set():
            try:
                acquired = await singleton.lock.try_acquire()
            except Exception as error:  # noqa: BLE001 - storage unreachable: poll again later
                logger.warning("timer %s: could not reach its lock (%s)", function.name, type(error).__name__)
                acquired = False
            if not acquired:
                if await _sleep_until(_utc_now() + timedelta(seconds=singleton.options.recovery_poll_seconds), stop):
                    return
                continue
            logger.info(
                "timer %s: listener lock acquired by instance %s (%s)", function.name, singleton.owner, singleton.lock.blob_name
            )
            lost = asyncio.Event()
            keeper = asyncio.create_task(singleton.lock.keep(lost), name=f"lease:{function.name}")
            try:
                await _run_schedule(function, schedule, stop, singleton, lost, singleton.owner)
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            if lost.is_set():
                logger.warning(
                    "timer %s: listener lock lost by instance %s; polling for it again", function.name, singleton.owner
                )
    finally:
        await singleton.lock.release()
        await storage.close()


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
) -> list[asyncio.Task]:
    """One task per timer and queue function; they end when ``stop`` is set."""
    env = os.environ if env is None else env
    tasks: list[asyncio.Task[None]] = []
    for function in table.others.values():
        try:
            if function.trigger_type == "TimerTrigger":
                schedule = resolve(str(function.binding["schedule"]), env)
                next_occurrence(schedule, datetime.now(UTC))  # fail now on a bad schedule, as the host does
                blob = blob_connection_string(env.get("AzureWebJobsStorage", ""))
                storage = HostStorage(blob, env) if blob else None
                tasks.append(asyncio.create_task(run_timer(function, schedule, stop, storage), name=f"timer:{function.name}"))
                logger.info("timer %s: schedule %s (UTC)", function.name, schedule)
                if storage is None:
                    logger.warning(
                        "timer %s runs on every devhost instance: AzureWebJobsStorage reaches no blob service for its lock",
                        function.name,
                    )
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
