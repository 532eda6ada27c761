"""Timer triggers on one instance at a time, as the Functions host runs them: a blob lease in AzureWebJobsStorage.

How the real host does it (azure-webjobs-sdk, azure-webjobs-sdk-extensions; facts, not code, carried over):

- ``TimerListener`` is marked ``[Singleton(Mode = SingletonMode.Listener)]``
  (azure-webjobs-sdk-extensions ``src/WebJobs.Extensions/Extensions/Timers/Listeners/TimerListener.cs``), so the
  host wraps it in a ``SingletonListener`` (azure-webjobs-sdk ``src/Microsoft.Azure.WebJobs.Host/Singleton/
  SingletonListener.cs``): only the instance holding the lock starts the timer; the others retry to take the
  lock every ``ListenerLockRecoveryPollingInterval`` and start the timer once they have it.
- The lock is a lease on the blob ``azure-webjobs-hosts/locks/<hostId>/<function full name>.Listener``
  (``SingletonManager.FormatLockId``, ``BlobLeaseDistributedLockManager``: container ``azure-webjobs-hosts``,
  directory ``locks``; a missing blob is created empty, then leased; 409 = someone else holds it). The function's
  full name under the Functions host is ``Host.Functions.<name>``.
- ``SingletonOptions``: listener lock period 60 s (lease bounds 15..60 s), renewed when half of it has passed,
  recovery polling every 60 s (at least 15 s). A lost lease (renewal refused) stops the listener, which then
  goes back to polling for the lock.
- With ``use_monitor`` (the default), the schedule status lives in ``azure-webjobs-hosts/timers/<hostId>/
  <timer name>/status`` as ``{"Last", "Next", "LastUpdated"}`` (``StorageScheduleMonitorV2``), the timer name
  being ``<declaring type>.<method>``, i.e. ``Host.Functions.<name>``. On start, a recorded ``Next`` already
  past means an occurrence was missed: it runs at once with ``IsPastDue`` (``ScheduleMonitor.CheckPastDueAsync``).

What devhost does differently, on purpose:

- Before each occurrence the holder renews its lease once more and skips the occurrence if that fails. The
  host relies on its renewal timer alone, which leaves up to half a lease period in which a holder whose lease
  was lost (e.g. storage restarted and forgot it; Azurite does) still fires. One storage round trip per
  occurrence closes that window, so each occurrence runs on one instance.
- The recovery polling interval may go below 15 s (``DEVHOST_LISTENER_LOCK_RECOVERY_SECONDS``) so tests of a
  takeover stay short; the lease itself stays within Azure's 15..60 s.
- The lock blob's ``FunctionInstance`` metadata names the holder (``DEVHOST_INSTANCE_ID``) so a test or an
  operator can see which instance runs the timers; the host writes that metadata for function-level locks only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

logger = logging.getLogger("devhost.singleton")

HOSTS_CONTAINER = "azure-webjobs-hosts"
FUNCTION_PREFIX = "Host.Functions."
INSTANCE_METADATA_KEY = "FunctionInstance"
#: Azure Storage's bounds for a finite blob lease (seconds).
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 15, 60
#: Newtonsoft writes DateTime.MinValue for "never"; read it back as None.
NEVER = "0001-01-01T00:00:00"
#: Storage calls of the lock fail fast: the runner retries on its own schedule, the lease is the deadline.
FAST_FAIL = {"retry_total": 0, "connection_timeout": 3, "read_timeout": 5}


@dataclass(frozen=True)
class SingletonOptions:
    """Listener lock period and recovery polling (``SingletonOptions`` defaults: 60 s and 60 s)."""

    listener_lock_seconds: int = 60
    recovery_poll_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SingletonOptions:
        lock = int(env.get("DEVHOST_LISTENER_LOCK_SECONDS") or cls.listener_lock_seconds)
        if not MIN_LEASE_SECONDS <= lock <= MAX_LEASE_SECONDS:
            raise ValueError(
                f"DEVHOST_LISTENER_LOCK_SECONDS must be within [{MIN_LEASE_SECONDS}, {MAX_LEASE_SECONDS}] (a blob lease)"
            )
        poll = float(env.get("DEVHOST_LISTENER_LOCK_RECOVERY_SECONDS") or cls.recovery_poll_seconds)
        if poll < 0.5:
            raise ValueError("DEVHOST_LISTENER_LOCK_RECOVERY_SECONDS must be at least 0.5")
        return cls(listener_lock_seconds=lock, recovery_poll_seconds=poll)


def host_id(env: Mapping[str, str]) -> str:
    """``AzureFunctionsWebHost__hostid`` when set (as on the platform), else one derived from the machine name.

    Every instance of one app must share it (they do on the platform: it comes from the app's name); the rig sets it.
    """
    configured = (env.get("AzureFunctionsWebHost__hostid") or "").strip().lower()
    raw = configured or socket.gethostname().lower()
    return re.sub(r"[^a-z0-9-]", "-", raw)[:32].strip("-") or "devhost"


def instance_id(env: Mapping[str, str]) -> str:
    return (env.get("DEVHOST_INSTANCE_ID") or "").strip() or f"{socket.gethostname()}-{os.getpid()}"


def blob_connection_string(connection: str) -> str | None:
    """The connection string if it reaches a blob service, else None.

    Explicit endpoints without ``BlobEndpoint`` (what this repo's Azurite gives without a blob port) would make
    the SDK fall back to ``<account>.blob.core.windows.net``: never that from a local tool.
    """
    parts = {key.strip().lower(): value for key, _, value in (p.partition("=") for p in connection.split(";")) if key.strip()}
    if parts.get("usedevelopmentstorage", "").lower() == "true" or parts.get("blobendpoint"):
        return connection
    if any(key.endswith("endpoint") for key in parts) or "accountname" not in parts:
        return None
    return connection


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith(NEVER):
        return None
    return _utc(datetime.fromisoformat(value))


def _format_time(moment: datetime | None) -> str:
    return NEVER if moment is None else _utc(moment).isoformat()


@dataclass
class ScheduleStatus:
    """The timer's recorded schedule: the last occurrence run, the next one expected, when that was computed."""

    last: datetime | None
    next: datetime
    last_updated: datetime | None

    def to_json(self) -> str:
        return json.dumps(
            {"Last": _format_time(self.last), "Next": _format_time(self.next), "LastUpdated": _format_time(self.last_updated)}
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ScheduleStatus | None:
        document = json.loads(text or "null")
        if not isinstance(document, dict):
            return None
        following = _parse_time(document.get("Next"))
        if following is None:
            return None
        return cls(last=_parse_time(document.get("Last")), next=following, last_updated=_parse_time(document.get("LastUpdated")))


def check_past_due(
    now: datetime, status: ScheduleStatus | None, next_after: Callable[[datetime], datetime]
) -> tuple[timedelta, ScheduleStatus, bool]:
    """(how late, the status to use, whether it changed and must be written), as ``CheckPastDueAsync`` decides.

    No status yet: record the next occurrence from now (not past due). A status whose ``Next`` does not follow
    from its ``Last`` (or ``LastUpdated``) means the schedule changed: recompute, from now if that is past.
    Past due when now is after the recorded ``Next``.
    """
    if status is None:
        return timedelta(0), ScheduleStatus(last=None, next=next_after(now), last_updated=now), True
    changed = False
    base = status.last or status.last_updated or now
    expected = next_after(base)
    if status.next != expected:
        updated = base
        if now > expected:
            expected, updated = next_after(now), now
        status = ScheduleStatus(last=None, next=expected, last_updated=updated)
        changed = True
    late = now - status.next
    return (max(timedelta(0), late)), status, changed


class ListenerLock:
    """The lease on ``locks/<hostId>/Host.Functions.<name>.Listener`` and its renewal."""

    def __init__(self, container: Any, host: str, function_name: str, owner: str, lease_seconds: int) -> None:
        self.blob_name = f"locks/{host}/{FUNCTION_PREFIX}{function_name}.Listener"
        self._container = container
        self._owner = owner
        self.lease_seconds = lease_seconds
        self._lease: Any = None
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        return self._lease is not None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def try_acquire(self) -> bool:
        """One attempt; True when this instance now holds the lock. Storage errors propagate (the caller polls again)."""
        blob = self._container.get_blob_client(self.blob_name)
        started = self._now()
        try:
            lease = await blob.acquire_lease(lease_duration=self.lease_seconds, **FAST_FAIL)
        except ResourceExistsError:
            return False  # 409: another instance holds it
        except ResourceNotFoundError:
            await self._create_blob(blob)
            try:
                lease = await blob.acquire_lease(lease_duration=self.lease_seconds, **FAST_FAIL)
            except ResourceExistsError:
                return False
        self._lease, self._valid_until = lease, started + self.lease_seconds
        try:
            await blob.set_blob_metadata({INSTANCE_METADATA_KEY: self._owner}, lease=lease, **FAST_FAIL)
        except HttpResponseError as error:  # informational only; the lease is what counts
            logger.warning("could not name the holder of %s: %s", self.blob_name, type(error).__name__)
        return True

    async def _create_blob(self, blob: Any) -> None:
        try:
            await blob.upload_blob(b"", overwrite=False, **FAST_FAIL)
            return
        except ResourceExistsError:
            return  # created meanwhile (or leased): acquiring will tell
        except ResourceNotFoundError:
            pass  # no container yet
        try:
            await self._container.create_container(**FAST_FAIL)
        except ResourceExistsError:
            pass
        try:
            await blob.upload_blob(b"", overwrite=False, **FAST_FAIL)
        except ResourceExistsError:
            pass

    async def renew(self) -> bool:
        """True while held. False once storage refuses the lease (lost) or it has run out; errors propagate otherwise."""
        if self._lease is None:
            return False
        started = self._now()
        try:
            await self._lease.renew(**FAST_FAIL)
        except HttpResponseError as error:
            if error.status_code in (409, 412, 404) or started > self._valid_until:
                self._lease = None
                return False
            raise
        except Exception:
            if started > self._valid_until:  # storage unreachable for longer than the lease: assume lost
                self._lease = None
                return False
            raise
        self._valid_until = started + self.lease_seconds
        return True

    async def confirm(self) -> bool:
        """Renew now, treating any failure as "not held" (used right before firing an occurrence)."""
        try:
            return await self.renew()
        except Exception as error:  # noqa: BLE001 - unreachable storage: do not fire on a lease that may be gone
            logger.warning("lease check of %s failed: %s", self.blob_name, type(error).__name__)
            return False

    async def keep(self, lost: asyncio.Event) -> None:
        """Renew at half the lease period (every second while renewals fail); set ``lost`` when the lease is gone."""
        interval = self.lease_seconds / 2
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                if not await self.renew():
                    lost.set()
                    return
                delay = interval
            except Exception as error:  # noqa: BLE001 - a transient storage error: try again sooner, within the lease
                logger.warning("renewing %s failed (%s); retrying", self.blob_name, type(error).__name__)
                delay = 1.0

    async def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            await lease.release(**FAST_FAIL)
        except Exception as error:  # noqa: BLE001 - expired or taken meanwhile: nothing to release (as the host)
            logger.info("releasing %s: %s", self.blob_name, type(error).__name__)


class ScheduleMonitor:
    """``timers/<hostId>/Host.Functions.<name>/status``: read on listener start, written after every occurrence."""

    def __init__(self, container: Any, host: str, function_name: str) -> None:
        self.blob_name = f"timers/{host}/{FUNCTION_PREFIX}{function_name}/status"
        self._container = container

    async def get(self) -> ScheduleStatus | None:
        try:
            downloader = await self._container.get_blob_client(self.blob_name).download_blob(**FAST_FAIL)
            return ScheduleStatus.from_json(await downloader.readall())
        except ResourceNotFoundError:
            return None

    async def update(self, status: ScheduleStatus) -> None:
        """Best effort, as the host: a failed write is logged, the schedule goes on."""
        try:
            await self._container.get_blob_client(self.blob_name).upload_blob(
                status.to_json().encode(), overwrite=True, **FAST_FAIL
            )
        except Exception as error:  # noqa: BLE001 - best effort (StorageScheduleMonitorV2.UpdateStatusAsync logs and continues)
            logger.warning("could not record the schedule status in %s: %s", self.blob_name, type(error).__name__)


@dataclass
class TimerSingleton:
    """What one timer function needs to run as a singleton: its lock, its schedule monitor, the polling interval."""

    lock: ListenerLock
    monitor: ScheduleMonitor | None
    options: SingletonOptions
    owner: str


class HostStorage:
    """One blob container client (``azure-webjobs-hosts``) per devhost process, for every timer's lock and status."""

    def __init__(self, connection_string: str, env: Mapping[str, str]) -> None:
        from azure.storage.blob.aio import ContainerClient

        self.container = ContainerClient.from_connection_string(connection_string, HOSTS_CONTAINER)
        self.host = host_id(env)
        self.owner = instance_id(env)
        self.options = SingletonOptions.from_env(env)

    def for_timer(self, function_name: str, use_monitor: bool) -> TimerSingleton:
        lock = ListenerLock(self.container, self.host, function_name, self.owner, self.options.listener_lock_seconds)
        monitor = ScheduleMonitor(self.container, self.host, function_name) if use_monitor else None
        return TimerSingleton(lock=lock, monitor=monitor, options=self.options, owner=self.owner)

    async def close(self) -> None:
        await self.container.close()
