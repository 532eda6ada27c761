"""The fleet rig: N devhost instances behind HAProxy, sharing one Azurite and one ACS emulator.

    with start_fleet(tmp_path, FleetOptions(instances=3)) as fleet:
        requests.post(fleet.api("token"), headers={"X-Dev-User": "alice"})
        fleet.kill(1)             # SIGKILL; HAProxy takes it out
        fleet.restart(1)          # same port; back in the pool once its health check passes
        fleet.restart_azurite()   # storage goes away and comes back with its data (on disk)
        fleet.emulator.stats()    # what ACS saw; fleet.live_identities() lists them

Everything listens on free loopback ports. The instances share one ``AzureWebJobsStorage`` (Table, Queue and
Blob: the identity map, the revocation ledger and queue, the timers' singleton locks), one host id (so the
revocation timer runs on one instance at a time, as on the platform), one identity table and one revocation
table. The emulator has ACS's real per-resource limits unless ``emulator_args`` say otherwise, and keeps its
state in SQLite so the identities it holds can be listed (orphans are live identities nobody maps).
"""

from __future__ import annotations

import random
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.azurite import AzuriteProcess, start_azurite
from localdev.emulator_process import EmulatorProcess, start_emulator
from localdev.fleet.haproxy import LoadBalancer, ServerState
from localdev.fleet.instances import HostInstance, app_environment


@dataclass(frozen=True)
class FleetOptions:
    """What the rig starts. Settings not named here are the app's defaults."""

    instances: int = 3
    #: the revocation sweep's timer (six-field NCRONTAB)
    schedule: str = "0 */5 * * * *"
    #: the timers' listener lock: lease (15..60 s) and how often non-holders try to take it
    lock_seconds: int = 15
    lock_recovery_seconds: float = 3.0
    #: extra emulator flags, e.g. ("--fault-latency-ms", "50"); none = ACS's real limits
    emulator_args: tuple[str, ...] = ()
    #: app settings for every instance (they win over the rig's)
    app_settings: Mapping[str, str] = field(default_factory=dict)


class Fleet:
    """The running rig. Instances are addressed by index; ``names[i]`` is what HAProxy and the logs call them."""

    def __init__(
        self,
        workdir: Path,
        azurite: AzuriteProcess,
        emulator: EmulatorProcess,
        instances: list[HostInstance],
        lb: LoadBalancer,
        settings: dict[str, str],
    ) -> None:
        self.workdir = workdir
        self.azurite = azurite
        self.emulator = emulator
        self.instances = instances
        self.lb = lb
        self.settings = settings
        self.events: list[tuple[float, str]] = []  # (time.time(), what happened), for tracing effects to causes

    # addresses ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.lb.url

    def api(self, path: str) -> str:
        return f"{self.lb.url}/api/{path.lstrip('/')}"

    @property
    def names(self) -> list[str]:
        return [instance.name for instance in self.instances]

    @property
    def identity_table(self) -> str:
        return self.settings["IDENTITY_TABLE_NAME"]

    @property
    def revocation_table(self) -> str:
        return self.settings["REVOCATION_TABLE_NAME"]

    @property
    def host_id(self) -> str:
        return self.settings["AzureFunctionsWebHost__hostid"]

    # faults -------------------------------------------------------------------

    def kill(self, index: int, *, wait_down: bool = True) -> float:
        """SIGKILL instance ``index``; with ``wait_down``, seconds until HAProxy has taken it out."""
        self.instances[index].kill()
        self.events.append((time.time(), f"kill {self.names[index]}"))
        return self.lb.wait_for(self.names[index], up=False) if wait_down else 0.0

    def restart(self, index: int, *, wait_up: bool = True) -> float:
        """Start instance ``index`` again on its port (after a kill or stop).

        With ``wait_up``, returns the seconds until it is back in the balancer's pool.
        """
        instance = self.instances[index]
        instance.stop()
        instance.start()
        self.events.append((time.time(), f"restart {instance.name}"))
        return self.lb.wait_for(instance.name, up=True, timeout=30) if wait_up else 0.0

    def restart_azurite(self) -> float:
        """Stop Azurite and start it again on the same ports, data kept (on disk); the seconds it was away."""
        started = time.monotonic()
        self.events.append((time.time(), "azurite down"))
        self.azurite.restart()
        self.events.append((time.time(), "azurite up"))
        return time.monotonic() - started

    # what happened --------------------------------------------------------------

    def server_states(self) -> dict[str, ServerState]:
        return self.lb.server_states()

    def emulator_stats(self) -> dict[str, Any]:
        return self.emulator.stats()

    def log_text(self, index: int) -> str:
        return self.instances[index].log_text()

    def live_identities(self) -> dict[str, float]:
        """ACS identities alive in the emulator: id -> creation time (time.time()), read from its SQLite state."""
        with sqlite3.connect(f"file:{self.workdir / 'emulator.sqlite'}?mode=ro", uri=True) as db:
            return {row[0]: row[1] for row in db.execute("SELECT id, created FROM identities WHERE deleted = 0")}

    def identity_creations(self) -> dict[str, float]:
        """Every ACS identity the emulator created, deleted ones included: id -> creation time (time.time())."""
        with sqlite3.connect(f"file:{self.workdir / 'emulator.sqlite'}?mode=ro", uri=True) as db:
            return {row[0]: row[1] for row in db.execute("SELECT id, created FROM identities")}

    def mapped_identities(self) -> dict[str, str]:
        """The identity map: ACS id -> row key (the hashed user), read from Table storage."""
        from azure.data.tables import TableClient

        with TableClient.from_connection_string(self.azurite.connection_string, self.identity_table) as table:
            # mapping rows only: the reverse index's partitions start with "i"
            rows = table.query_entities("PartitionKey lt 'i'", select=["AcsUserId", "RowKey"])
            return {entity["AcsUserId"]: entity["RowKey"] for entity in rows}

    def timer_holder(self) -> str | None:
        """The instance holding the revocation timer's listener lock (from the lock blob), or None."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobClient

        blob = BlobClient.from_connection_string(
            self.azurite.connection_string,
            "azure-webjobs-hosts",
            f"locks/{self.host_id}/Host.Functions.revocation_sweep.Listener",
        )
        try:
            properties = blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        finally:
            blob.close()
        if properties.lease.state != "leased":
            return None
        return properties.metadata.get("FunctionInstance")

    def stop(self, grace_seconds: float = 3.0) -> None:
        """The balancer, then every instance at once: SIGTERM, SIGKILL for those still running after ``grace_seconds``.

        A short grace: after an Azurite restart an instance's storage clients may sit in the SDK's retry back-off
        (15 s and more) before devhost can finish its shutdown, which is not worth waiting for at the end of a run.
        """
        self.lb.stop()
        for instance in self.instances:
            instance.terminate()
        deadline = time.monotonic() + grace_seconds
        for instance in self.instances:
            instance.stop(timeout=max(0.1, deadline - time.monotonic()))


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def listening_port(taken: set[int]) -> int:
    """A free loopback port below the ephemeral range, so no outgoing connection can take it meanwhile.

    Ports from the kernel (bind to 0) come from the ephemeral range, and any process's next outgoing connection
    may take one before the instance (or, after a kill, the restarted instance) binds it again.
    """
    low = _ephemeral_range()[0]
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, low) if low > 21000 else rng.randrange(1024, 65535)
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def fleet_settings(azurite: AzuriteProcess, emulator: EmulatorProcess, options: FleetOptions) -> dict[str, str]:
    """The app settings every instance gets: the shared stand-ins, unique table/queue names, triggers on."""
    suffix = uuid.uuid4().hex[:10]
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "AzureFunctionsWebHost__hostid": f"fleet-{suffix}",
        "ACS_CONNECTION_STRING": emulator.connection_string,
        "ACS_CA_BUNDLE": str(emulator.cert_path),
        "AUTH_MODE": "dev",
        "IDENTITY_TABLE_NAME": f"fleetids{suffix}",
        "REVOCATION_TABLE_NAME": f"fleetrev{suffix}",
        "REVOCATION_QUEUE_NAME": f"fleet-rev-{suffix}",
        "REVOCATION_SCHEDULE": options.schedule,
        "DEVHOST_RUN_TRIGGERS": "true",
        "DEVHOST_LISTENER_LOCK_SECONDS": str(options.lock_seconds),
        "DEVHOST_LISTENER_LOCK_RECOVERY_SECONDS": str(options.lock_recovery_seconds),
    }
    settings.update(options.app_settings)
    return settings


@contextmanager
def start_fleet(workdir: Path, options: FleetOptions | None = None) -> Iterator[Fleet]:
    """Start Azurite, the emulator, ``options.instances`` hosts and HAProxy in ``workdir``; stop them all on exit."""
    options = options or FleetOptions()
    if options.instances < 1:
        raise ValueError("a fleet needs at least one instance")
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        ports: set[int] = set()
        azurite = stack.enter_context(  # ports outside the ephemeral range: a restart binds them again
            start_azurite(
                table_port=listening_port(ports),
                queue_port=listening_port(ports),
                blob_port=listening_port(ports),
                location=workdir / "azurite",
                persistent=True,
            )
        )
        emulator = stack.enter_context(
            start_emulator(
                "--state-file", str(workdir / "emulator.sqlite"), *options.emulator_args, cert_dir=workdir / "emulator"
            )
        )
        settings = fleet_settings(azurite, emulator, options)
        env = app_environment(settings)
        instances = [
            HostInstance(name=f"i{index}", port=listening_port(ports), env=env, log_path=workdir / f"instance-i{index}.log")
            for index in range(options.instances)
        ]
        lb = LoadBalancer(workdir / "haproxy", listening_port(ports), [(instance.name, instance.port) for instance in instances])
        fleet = Fleet(workdir, azurite, emulator, instances, lb, settings)
        stack.callback(fleet.stop)
        for instance in instances:  # in parallel: each takes about a second to import the app
            instance.launch()
        for instance in instances:
            instance.wait_ready()
        lb.start()
        for instance in instances:
            lb.wait_for(instance.name, up=True)
        yield fleet
