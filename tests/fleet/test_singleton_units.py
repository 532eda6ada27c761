"""devhost's timer singleton, the pure parts: past-due decisions, the status blob's format, settings.

The rules are those of the Functions host's timer extension (azure-webjobs-sdk-extensions,
``src/WebJobs.Extensions/Extensions/Timers/Scheduling/ScheduleMonitor.cs`` ``CheckPastDueAsync``, and
``StorageScheduleMonitorV2.cs`` for the status blob) and of azure-webjobs-sdk's ``SingletonOptions.cs``
(lease bounds 15..60 s, defaults 60 s lock and 60 s recovery polling).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.singleton import (
    NEVER,
    ScheduleStatus,
    SingletonOptions,
    blob_connection_string,
    check_past_due,
    host_id,
)
from devhost.triggers import next_occurrence

EVERY_5_MIN = "0 */5 * * * *"
T0 = datetime(2026, 11, 26, 10, 2, 30, tzinfo=UTC)


def following(moment: datetime) -> datetime:
    return next_occurrence(EVERY_5_MIN, moment)


def test_a_timer_without_a_status_records_its_next_occurrence_and_is_not_past_due() -> None:
    late, status, changed = check_past_due(T0, None, following)
    assert (late, changed) == (timedelta(0), True)
    assert status.next == datetime(2026, 11, 26, 10, 5, tzinfo=UTC)
    assert status.last is None and status.last_updated == T0


def test_a_recorded_next_occurrence_in_the_past_is_past_due_by_the_gap() -> None:
    recorded = ScheduleStatus(
        last=datetime(2026, 11, 26, 9, 50, tzinfo=UTC), next=datetime(2026, 11, 26, 9, 55, tzinfo=UTC), last_updated=None
    )
    late, status, changed = check_past_due(T0, recorded, following)
    assert late == T0 - datetime(2026, 11, 26, 9, 55, tzinfo=UTC)  # 7.5 minutes: the 09:55 and 10:00 runs were missed
    assert (status, changed) == (recorded, False)


def test_a_status_still_ahead_is_not_past_due() -> None:
    recorded = ScheduleStatus(
        last=datetime(2026, 11, 26, 10, 0, tzinfo=UTC), next=datetime(2026, 11, 26, 10, 5, tzinfo=UTC), last_updated=None
    )
    assert check_past_due(T0, recorded, following) == (timedelta(0), recorded, False)


def test_a_changed_schedule_is_recomputed_from_now_when_its_next_occurrence_would_be_in_the_past() -> None:
    # recorded under an hourly schedule: Next 11:00 does not follow from Last 09:00 under every-5-minutes
    recorded = ScheduleStatus(
        last=datetime(2026, 11, 26, 9, 0, tzinfo=UTC), next=datetime(2026, 11, 26, 11, 0, tzinfo=UTC), last_updated=None
    )
    late, status, changed = check_past_due(T0, recorded, following)
    assert (late, changed) == (timedelta(0), True)  # not reported as past due (the host does the same)
    assert status == ScheduleStatus(last=None, next=datetime(2026, 11, 26, 10, 5, tzinfo=UTC), last_updated=T0)


def test_the_status_blob_round_trips_and_reads_never_as_none() -> None:
    status = ScheduleStatus(last=None, next=datetime(2026, 11, 26, 10, 5, tzinfo=UTC), last_updated=T0)
    text = status.to_json()
    assert f'"Last": "{NEVER}"' in text and '"Next": "2026-11-26T10:05:00+00:00"' in text
    assert ScheduleStatus.from_json(text) == status
    assert ScheduleStatus.from_json(b'{"Last": "2026-11-26T10:00:00Z", "Next": "2026-11-26T10:05:00Z"}') == ScheduleStatus(
        last=datetime(2026, 11, 26, 10, 0, tzinfo=UTC), next=datetime(2026, 11, 26, 10, 5, tzinfo=UTC), last_updated=None
    )
    assert ScheduleStatus.from_json(b"") is None
    assert ScheduleStatus.from_json(b'{"Last": "2026-11-26T10:00:00Z"}') is None


def test_only_a_connection_string_that_reaches_a_blob_service_is_used_for_locks() -> None:
    azurite = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/devstoreaccount1;"
    assert blob_connection_string(azurite) is None  # explicit endpoints without BlobEndpoint: not the public cloud
    assert blob_connection_string(azurite + "BlobEndpoint=http://127.0.0.1:2/devstoreaccount1;") is not None
    assert blob_connection_string("UseDevelopmentStorage=true") == "UseDevelopmentStorage=true"
    assert (
        blob_connection_string("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net")
        is not None
    )
    assert blob_connection_string("") is None


def test_host_id_comes_from_the_setting_lowercased_and_at_most_32_characters() -> None:
    assert host_id({"AzureFunctionsWebHost__hostid": "My_App.Prod"}) == "my-app-prod"
    assert len(host_id({"AzureFunctionsWebHost__hostid": "x" * 50})) == 32
    assert host_id({})  # derived from the machine name when unset


def test_singleton_options_default_to_the_hosts_and_keep_the_lease_within_azures_bounds() -> None:
    assert SingletonOptions.from_env({}) == SingletonOptions(listener_lock_seconds=60, recovery_poll_seconds=60.0)
    assert SingletonOptions.from_env({"DEVHOST_LISTENER_LOCK_SECONDS": "15", "DEVHOST_LISTENER_LOCK_RECOVERY_SECONDS": "2"}) == (
        SingletonOptions(listener_lock_seconds=15, recovery_poll_seconds=2.0)
    )
    for bad in ("14", "61"):
        with pytest.raises(ValueError, match="DEVHOST_LISTENER_LOCK_SECONDS"):
            SingletonOptions.from_env({"DEVHOST_LISTENER_LOCK_SECONDS": bad})
