"""The composition root: every client a worker uses, built once from app settings, closed together.

``function_app.py`` creates one :class:`Services` per worker process and hands it to
the Blueprints; scripts, benchmarks and tests create their own with the environment
they want (``async with Services(env) as services: ...``). Nothing else in ``shared``
holds a client or reads ``os.environ``.

Clients are built on first use, not at import: the aiohttp sessions underneath must
belong to the worker's event loop, and a bad setting must surface as a precise 500
``misconfigured`` on the request that needs it (and in ``/api/health``), not as an
import error that takes every function down.

The sweep has its own ACS client with azure-core retries off: it handles 429 and 503
itself (pausing every worker for ``Retry-After``), where the user-facing client
retries briefly because a frontend is waiting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cached_property

from shared.adapters.acs import AcsIdentityClient
from shared.adapters.audit import TableAuditLog
from shared.adapters.auth import create_authenticator
from shared.adapters.fanout import QueueFanout
from shared.adapters.identity_map import TableIdentityMap
from shared.adapters.ledger import TableBudgetStore, TableRevocationLedger, TableSecrets
from shared.adapters.lifecycle import AsyncClosable
from shared.adapters.metrics import create_metrics
from shared.adapters.telemetry import configure_telemetry, quiet_sdk_logs
from shared.domain.clock import utc_now
from shared.domain.journal import Journal
from shared.domain.lookup import IdentityLookup
from shared.domain.metrics import Metrics
from shared.domain.policy import TokenPolicy
from shared.domain.ports import Authenticator, BatchQueue, SecretStore
from shared.domain.ratelimit import PerUserRateLimiter
from shared.domain.references import UserReferences
from shared.domain.revocation.budget import FleetBudget
from shared.domain.revocation.campaigns import Campaigns
from shared.domain.revocation.sweep import RevocationSettings, Sweeper, SweepOptions, build_sweeper
from shared.domain.token_service import TokenService
from shared.settings import (
    AcsSettings,
    AuditSettings,
    AuthSettings,
    StorageSettings,
    load_acs_settings,
    load_audit_settings,
    load_auth_settings,
    load_revocation_settings,
    load_storage_settings,
    load_token_policy,
    load_user_ref_key,
)


class Services(AsyncClosable):
    """One worker's settings and clients, each built on first use (see the module docstring)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        #: app settings as the host exposes them (environment variables)
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._acs: AcsIdentityClient | None = None
        self._sweep_acs: AcsIdentityClient | None = None
        self._identities: TableIdentityMap | None = None
        self._ledger: TableRevocationLedger | None = None
        self._secrets: TableSecrets | None = None
        self._user_refs: UserReferences | None = None
        self._audit: TableAuditLog | None = None
        self._campaigns: Campaigns | None = None
        self._budget_store: TableBudgetStore | None = None
        self._journal: Journal | None = None
        self._fanout: QueueFanout | None = None
        self._authenticator: Authenticator | None = None
        self._token_service: TokenService | None = None
        self._sweeper: Sweeper | None = None
        self._metrics: Metrics | None = None

    @classmethod
    def from_environment(cls) -> Services:
        """The worker's services, with Application Insights export started when it is configured, and the Azure
        SDKs' request logs (which name storage rows) kept out of the function's log."""
        quiet_sdk_logs()
        configure_telemetry(os.environ)
        return cls()

    # ------------------------------------------------------------------ settings (parsed once; errors re-raised each time)

    @cached_property
    def acs_settings(self) -> AcsSettings:
        return load_acs_settings(self.env)

    @cached_property
    def storage_settings(self) -> StorageSettings:
        return load_storage_settings(self.env)

    @cached_property
    def auth_settings(self) -> AuthSettings:
        return load_auth_settings(self.env)

    @cached_property
    def token_policy(self) -> TokenPolicy:
        return load_token_policy(self.env)

    @cached_property
    def revocation_settings(self) -> RevocationSettings:
        return load_revocation_settings(self.env)

    @cached_property
    def audit_settings(self) -> AuditSettings:
        return load_audit_settings(self.env)

    # ------------------------------------------------------------------ clients

    def acs(self) -> AcsIdentityClient:
        """The user-facing ACS client (brief retries: a frontend is waiting)."""
        if self._acs is None:
            self._acs = AcsIdentityClient.from_settings(self.acs_settings, self.env, metrics=self.metrics(), fast_answers=True)
        return self._acs

    def sweep_acs(self) -> AcsIdentityClient:
        """The sweep's ACS client: no azure-core retries, the sweep paces and retries itself."""
        if self._sweep_acs is None:
            self._sweep_acs = AcsIdentityClient.from_settings(self.acs_settings, self.env, metrics=self.metrics(), retry_total=0)
        return self._sweep_acs

    def metrics(self) -> Metrics:
        """Metrics to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set, else NoMetrics.

        Process-wide underneath (the exporter's meter provider is); nothing to close.
        """
        if self._metrics is None:
            self._metrics = create_metrics(self.env)
        return self._metrics

    def identities(self) -> TableIdentityMap:
        if self._identities is None:
            self._identities = TableIdentityMap.from_settings(self.storage_settings, self.env)
        return self._identities

    def ledger(self) -> TableRevocationLedger:
        if self._ledger is None:
            table_name = self.revocation_settings.table_name
            self._ledger = TableRevocationLedger.from_settings(self.storage_settings, table_name, self.env)
        return self._ledger

    def user_refs(self) -> UserReferences:
        """Keyed user references for logs and the audit trail (USER_REF_KEY, or a key kept in storage).

        A bad USER_REF_KEY raises here; storage is reached only when a generated key is first needed.
        """
        if self._user_refs is None:
            self._user_refs = UserReferences(_DeferredSecrets(self.secrets), load_user_ref_key(self.env))
        return self._user_refs

    def secrets(self) -> TableSecrets:
        """Secrets the deployment generates once and keeps (in the revocation table)."""
        if self._secrets is None:
            table_name = self.revocation_settings.table_name
            self._secrets = TableSecrets.from_settings(self.storage_settings, table_name, self.env)
        return self._secrets

    def audit(self) -> TableAuditLog:
        """The append-only audit trail (AUDIT_TABLE_NAME)."""
        if self._audit is None:
            self._audit = TableAuditLog.from_settings(self.storage_settings, self.audit_settings.table_name, self.env)
        return self._audit

    def journal(self) -> Journal:
        """Where identities created and deleted and revocations are told: the audit trail and the metrics."""
        if self._journal is None:
            self._journal = Journal(self.audit(), self.user_refs(), self.metrics())
        return self._journal

    def budget_store(self) -> TableBudgetStore:
        """The fleet's shared ACS budget slots (in the revocation table): every instance's sweep draws from them."""
        if self._budget_store is None:
            table_name = self.revocation_settings.table_name
            self._budget_store = TableBudgetStore.from_settings(self.storage_settings, table_name, self.env)
        return self._budget_store

    def campaigns(self) -> Campaigns:
        """Incident revocation campaigns (their documents live in the revocation table)."""
        if self._campaigns is None:
            self._campaigns = Campaigns(self.ledger(), utc_now, self.revocation_settings.rate_per_second)
        return self._campaigns

    def lookup(self) -> IdentityLookup:
        """The operators' identity lookups (built per call: it holds nothing of its own)."""
        return IdentityLookup(self.identities(), self.ledger(), self.audit(), self.user_refs())

    def fanout(self) -> QueueFanout:
        if self._fanout is None:
            self._fanout = QueueFanout.from_settings(self.storage_settings, self.revocation_settings.queue_name, self.env)
        return self._fanout

    def authenticator(self) -> Authenticator:
        """The worker's one authenticator (its JWKS cache and HTTP session are shared)."""
        if self._authenticator is None:
            self._authenticator = create_authenticator(self.auth_settings)
        return self._authenticator

    def token_service(self) -> TokenService:
        """The token service over the user-facing ACS client, the identity map and the ledger."""
        if self._token_service is None:
            self._token_service = TokenService(
                acs=self.acs(),
                identities=self.identities(),
                ledger=self.ledger(),
                limiter=PerUserRateLimiter(self.token_policy.per_user_per_minute),
                resource=self.acs_settings.resource,
                revoke_limiter=PerUserRateLimiter(
                    self.token_policy.revokes_per_user_per_hour, period_seconds=3600, what="revokes and deletes"
                ),
                journal=self.journal(),
                issue_budget=self._token_budget("issue"),
                create_budget=self._token_budget("create"),
            )
        return self._token_service

    def _token_budget(self, operation: str) -> FleetBudget | None:
        """The fleet-wide budget of one ACS operation when TOKEN_FLEET_RATE_PER_30S is set (else ACS's 429s decide)."""
        rate = self.token_policy.fleet_rate_per_30s
        return FleetBudget(self.budget_store(), operation, rate) if rate else None

    def sweeper(self) -> Sweeper:
        """The revocation sweep (ledger, queue, identity map, its own ACS client and pacers)."""
        if self._sweeper is None:
            self._sweeper = self.new_sweeper(self.fanout())
        return self._sweeper

    def new_sweeper(self, queue: BatchQueue | None) -> Sweeper:
        """A sweep over this root's clients with the given queue (None: a run that hands nothing to the queue, as
        the 100k bench measures it); the app's own is :meth:`sweeper`."""
        return build_sweeper(
            self.sweep_acs(),
            self.identities(),
            self.ledger(),
            queue,
            self.revocation_settings,
            self.token_policy.max_expiry_minutes,
            options=SweepOptions(
                resource=self.acs_settings.resource,
                journal=self.journal(),
                audit=self.audit(),
                audit_retention_days=self.audit_settings.retention_days,
                campaigns=self.campaigns(),
            ),
            budget_store=self.budget_store(),
        )

    # ------------------------------------------------------------------ lifetime

    async def close(self) -> None:
        """Close every client built so far; the next use builds new ones (scripts that end their loop)."""
        closables = (
            self._acs,
            self._sweep_acs,
            self._identities,
            self._ledger,
            self._fanout,
            self._authenticator,
            self._secrets,
            self._audit,
            self._budget_store,
        )
        self._acs = self._sweep_acs = self._identities = self._ledger = self._fanout = None
        self._secrets = None
        self._user_refs = None
        self._audit = None
        self._journal = None
        self._campaigns = None
        self._budget_store = None
        self._authenticator = None
        self._token_service = None
        self._sweeper = None
        for closable in closables:
            if closable is not None:
                await closable.close()


class _DeferredSecrets:
    """A secret store built on first use, so settings that only it needs are read only then."""

    def __init__(self, build: Callable[[], SecretStore]) -> None:
        self._build = build

    async def get_or_create(self, name: str, new_value: str) -> str:
        return await self._build().get_or_create(name, new_value)

    async def close(self) -> None:
        return None  # the store belongs to Services, which closes it
