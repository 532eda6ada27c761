"""The service's metrics, by name: what the domain counts, whatever exports it.

The names and attributes are the contract with the dashboards and alerts in ``docs/`` and
``infra/``; the Application Insights exporter lives in ``shared/adapters/metrics.py``. Attribute
values are always from small fixed sets (a kind, a source, an operation, an error code, a route):
never a user, a token or free text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

#: the values of the ``kind`` attribute (TOKENS_ISSUED)
KINDS = frozenset({"issue", "refresh", "teams"})
#: the values of the ``source`` attribute (identities created and deleted, revocations; also the audit trail's)
SOURCES = frozenset({"user", "replaced", "operator", "retention", "orphan", "session", "campaign"})

#: tokens handed out; kind = issue | refresh | teams
TOKENS_ISSUED = "acs_tokens_issued"
#: identities created in ACS; source = user | replaced (a mapping of another ACS resource)
IDENTITIES_CREATED = "acs_identities_created"
#: identities deleted in ACS; source = user | operator | retention | orphan
IDENTITIES_DELETED = "acs_identities_deleted"
#: revocations carried out in ACS; source = user | operator | session | campaign
REVOCATIONS = "acs_revocations"
#: ACS calls that failed; operation = the ACS operation (issue_token, revoke_tokens, ...), code = the domain
#: error's code (throttled, unavailable, identity_not_found, ...)
ACS_ERRORS = "acs_errors"
#: gauge: revocation requests waiting in the ledger, as the last sweep run counted them
SWEEP_BACKLOG = "acs_sweep_backlog"
#: gauge: identities an incident campaign still has to revoke; campaign = its id
CAMPAIGN_REMAINING = "acs_campaign_remaining"
#: histogram, milliseconds: HTTP requests; route = the function's name, status = the HTTP status code
REQUEST_DURATION = "acs_request_duration"


class Metrics(Protocol):
    """Counters, gauges and histograms; calls never block and never fail the caller."""

    def add(self, name: str, value: int = 1, attributes: Mapping[str, str] | None = None) -> None:
        """Add to a counter."""
        ...

    def set(self, name: str, value: float, attributes: Mapping[str, str] | None = None) -> None:
        """Set a gauge's current value."""
        ...

    def record(self, name: str, value: float, attributes: Mapping[str, str] | None = None) -> None:
        """Record one value of a histogram."""
        ...


class NoMetrics:
    """Metrics when nothing exports them (local runs, tests): every call does nothing."""

    def add(self, name: str, value: int = 1, attributes: Mapping[str, str] | None = None) -> None:
        return None

    def set(self, name: str, value: float, attributes: Mapping[str, str] | None = None) -> None:
        return None

    def record(self, name: str, value: float, attributes: Mapping[str, str] | None = None) -> None:
        return None
