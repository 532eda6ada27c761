"""devhost's timer singleton against Azurite's blob service: one holder at a time, handover, a forgotten lease.

Lock blob path, container and 409-means-taken follow azure-webjobs-sdk
``src/Microsoft.Azure.WebJobs.Host/Singleton/BlobLeaseDistributedLockManager.cs`` and ``SingletonManager.cs``
(``locks/<hostId>/<function full name>.Listener`` in ``azure-webjobs-hosts``); the status blob follows
azure-webjobs-sdk-extensions ``StorageScheduleMonitorV2.cs`` (``timers/<hostId>/<timer name>/status``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from azure.storage.blob.aio import ContainerClient

from devhost.singleton import HOSTS_CONTAINER, ListenerLock, ScheduleMonitor, ScheduleStatus
from localdev.azurite import AzuriteProcess, start_azurite

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteProcess]:
    with start_azurite(location=tmp_path_factory.mktemp("azurite-blob"), blob_port=0, persistent=True) as process:
        yield process


@pytest.fixture
async def container(azurite: AzuriteProcess) -> AsyncIterator[ContainerClient]:
    async with ContainerClient.from_connection_string(azurite.connection_string, HOSTS_CONTAINER) as client:
        yield client


def lock_pair(container: ContainerClient) -> tuple[ListenerLock, ListenerLock]:
    host = "h" + uuid.uuid4().hex[:8]
    return (ListenerLock(container, host, "tick", "instance-a", 15), ListenerLock(container, host, "tick", "instance-b", 15))


async def test_one_instance_holds_the_lock_and_names_itself_and_the_other_takes_it_after_a_release(
    container: ContainerClient,
) -> None:
    first, second = lock_pair(container)
    assert first.blob_name.startswith("locks/h") and first.blob_name.endswith("/Host.Functions.tick.Listener")
    assert await first.try_acquire() is True  # creates the container and the empty blob on the way
    assert await second.try_acquire() is False  # 409: held
    properties = await container.get_blob_client(first.blob_name).get_blob_properties()
    assert (properties.lease.state, properties.metadata["FunctionInstance"]) == ("leased", "instance-a")
    assert await first.renew() is True
    await first.release()
    assert await second.try_acquire() is True
    assert await first.renew() is False  # released: not held any more
    await second.release()


async def test_a_holder_whose_lease_storage_forgot_stops_firing_once_another_instance_holds_it(
    azurite: AzuriteProcess, container: ContainerClient
) -> None:
    first, second = lock_pair(container)
    assert await first.try_acquire() is True
    azurite.restart()  # Azurite keeps its blobs on disk but not their leases
    assert await second.try_acquire() is True
    assert await first.confirm() is False  # the check before each occurrence: the first holder must not fire
    assert first.held is False and await second.confirm() is True
    await second.release()


async def test_the_schedule_status_blob_round_trips(container: ContainerClient) -> None:
    monitor = ScheduleMonitor(container, "h" + uuid.uuid4().hex[:8], "tick")
    assert await monitor.get() is None
    status = ScheduleStatus(
        last=datetime(2026, 11, 26, 10, 0, tzinfo=UTC), next=datetime(2026, 11, 26, 10, 5, tzinfo=UTC), last_updated=None
    )
    await monitor.update(status)
    assert await monitor.get() == status
    assert monitor.blob_name.endswith("/Host.Functions.tick/status") and monitor.blob_name.startswith("timers/")
