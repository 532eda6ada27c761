"""The revocation sweep against real Azurite (Table + Queue) and the ACS emulator, in process.

Fixtures ``stand_ins`` (its own Azurite and emulator per module, so emulator counters
belong to one module) and ``world`` (one test's tables, queue and clients). Each test
gets its own identity table, ledger table and queue, and builds the same pieces the
composition root builds from app settings, with settings and clocks chosen by the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueClient

from devhost.queues import QueueTriggerRunner
from localdev.azurite import AzuriteProcess, start_azurite
from localdev.emulator_process import EmulatorProcess, start_emulator
from shared.adapters.acs import AcsIdentityClient
from shared.adapters.fanout import QueueFanout
from shared.adapters.identity_map import TableIdentityMap
from shared.adapters.ledger import TableRevocationLedger
from shared.domain.caller import Caller
from shared.domain.clock import utc_now
from shared.domain.policy import TokenRequest
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.revocation.sweep import RevocationSettings, Sweeper, build_sweeper
from shared.domain.revocation.work import decode_batch
from shared.domain.token_service import TokenGrant, TokenService
from shared.settings import load_acs_settings, load_revocation_settings, load_storage_settings
from tests.support import REPO_ROOT

REQUEST = TokenRequest(scopes=("voip",), expires_in_minutes=60)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    with (
        start_azurite(location=tmp_path_factory.mktemp("azurite"), queue_port=0) as azurite,
        start_emulator(cert_dir=tmp_path_factory.mktemp("cert")) as emulator,
    ):
        yield azurite, emulator


def default_settings(**changes) -> RevocationSettings:
    # Fast enough for tests; the emulator's own limits stay at ACS's documented 500 per 30 s.
    base = load_revocation_settings({"REVOCATION_RATE_PER_30S": "3000", "REVOCATION_CONCURRENCY": "4"})
    return dataclasses.replace(base, **changes)


#: what the timer function runs, in a process of its own (built from app settings, as in Azure)
TIMER_RUN = """
import asyncio
from shared.composition import Services

async def main():
    async with Services() as services:
        await services.sweeper().run_timer(past_due=False)

asyncio.run(main())
"""


@dataclass
class SweepWorld:
    """Real stand-ins plus the sweep's parts; ``clock`` can be moved to test the policies."""

    azurite: AzuriteProcess
    emulator: EmulatorProcess
    store: TableIdentityMap
    ledger: TableRevocationLedger
    fanout: QueueFanout
    tokens: TokenService
    user_acs: AcsIdentityClient
    sweep_acs: AcsIdentityClient
    queue_name: str
    offset: list  # [timedelta]: added to the real time by ``clock``

    def clock(self) -> datetime:
        return utc_now() + self.offset[0]

    def sweeper(
        self, settings: RevocationSettings | None = None, *, with_queue: bool = True, max_token_minutes: int = 1440
    ) -> Sweeper:
        return build_sweeper(
            self.sweep_acs,
            self.store,
            self.ledger,
            self.fanout if with_queue else None,
            settings or default_settings(),
            max_token_minutes,
            clock=self.clock,
        )

    async def issue(self, user: str) -> TokenGrant:
        return await self.tokens.issue(Caller("dev", user, frozenset()), REQUEST)

    def queue_runner(self, sweeper: Sweeper) -> QueueTriggerRunner:
        async def batch(message) -> None:
            await sweeper.run_batch(decode_batch(message.get_body()))

        return QueueTriggerRunner(self.azurite.connection_string, self.queue_name, batch)

    async def kill_timer_run(self, after_revokes: int, *, wait_seconds: float = 60, **settings: str) -> int:
        """Run the timer function's work in a process of its own, SIGKILL it once ACS has done
        ``after_revokes`` revocations, and return how many it had done: a crash mid-run, no clean-up.
        ``settings`` are app settings on top of this world's tables, queue and stand-ins.
        """
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ACS_", "AzureWebJobs", "REVOCATION_", "WEBSITE_"))}
        env = {
            **inherited,
            "ACS_CONNECTION_STRING": self.emulator.connection_string,
            "ACS_CA_BUNDLE": str(self.emulator.cert_path),
            "AzureWebJobsStorage": self.azurite.connection_string,
            "IDENTITY_TABLE_NAME": self.store._table.table_name,
            "REVOCATION_TABLE_NAME": self.ledger._table.table_name,
            "REVOCATION_QUEUE_NAME": self.queue_name,
            "REVOCATION_RATE_PER_30S": "3000",
            **settings,
        }
        process = subprocess.Popen([sys.executable, "-c", TIMER_RUN], cwd=REPO_ROOT, env=env)
        try:
            deadline = time.monotonic() + wait_seconds
            while self.successful("revoke") < after_revokes and time.monotonic() < deadline and process.poll() is None:
                await asyncio.sleep(0.05)
            assert process.poll() is None, "the sweep finished before it could be killed"
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=10)
        return self.successful("revoke")

    def successful(self, operation: str) -> int:
        """How many times ACS (the emulator) carried out an operation successfully."""
        code = {"revoke": 204, "delete": 204, "issue": 200}[operation]
        return self.emulator.stats()["statuses"].get(f"{operation}:{code}", 0)


@pytest.fixture
async def world(stand_ins):
    azurite, emulator = stand_ins
    emulator.reset()
    suffix = uuid.uuid4().hex[:12]
    storage = load_storage_settings({"AzureWebJobsStorage": azurite.connection_string, "IDENTITY_TABLE_NAME": "ids" + suffix})
    store = TableIdentityMap.from_settings(storage, {})
    ledger = TableRevocationLedger(TableClient.from_connection_string(azurite.connection_string, "rev" + suffix))
    queue_name = "rev-" + suffix
    fanout = QueueFanout(
        QueueClient.from_connection_string(azurite.connection_string, queue_name),
        QueueClient.from_connection_string(azurite.connection_string, queue_name + "-poison"),
    )
    acs_settings = load_acs_settings(
        {"ACS_CONNECTION_STRING": emulator.connection_string, "ACS_CA_BUNDLE": str(emulator.cert_path)}
    )
    user_acs = AcsIdentityClient.from_settings(acs_settings, {})
    sweep_acs = AcsIdentityClient.from_settings(acs_settings, {}, retry_total=0)
    offset = [timedelta(0)]
    tokens = TokenService(user_acs, store, ledger, PerUserRateLimiter(0), clock=lambda: utc_now() + offset[0])
    yield SweepWorld(azurite, emulator, store, ledger, fanout, tokens, user_acs, sweep_acs, queue_name, offset)
    emulator.set_faults(throttleRate=0, unavailableRate=0, latencyMs=0, throttleNext=0, unavailableNext=0)
    for closable in (user_acs, sweep_acs, store, ledger, fanout):
        await closable.close()


def key_of(user: str) -> str:
    return Caller("dev", user, frozenset()).key
