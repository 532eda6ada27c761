"""docs/monitoring.md queries the metrics the app exports, by their real names and attributes.

No Application Insights here to run KQL against: these checks keep the document in step with the
code (metric names, exported attributes, the request log line's dimensions, the Bicep's parameters).
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.adapters.metrics import ATTRIBUTE_VALUES
from shared.domain import metrics as names
from tests.infra.bicep_text import BicepFile

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "monitoring.md").read_text(encoding="utf-8")
QUERIES = re.findall(r"```kusto\n(.*?)```", DOC, flags=re.S)
METRIC_NAMES = {value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)}


def test_every_metric_has_a_query_and_every_query_reads_a_known_source() -> None:
    queried = {name for query in QUERIES for name in re.findall(r'"(acs_[a-z_]+)"', query)}
    assert queried == METRIC_NAMES
    for query in QUERIES:
        table = query.split("\n", 1)[0].strip()
        assert table in {"customMetrics", "traces", "AppMetrics"}, query


def test_queries_use_only_exported_attributes() -> None:
    used = {attribute for query in QUERIES for attribute in re.findall(r"(?:customDimensions|Properties)\.([a-z_]+)", query)}
    request_line = {"operation", "latency_ms"}  # record_request's dimensions (shared/adapters/telemetry.py)
    assert used <= set(ATTRIBUTE_VALUES) | request_line, used - set(ATTRIBUTE_VALUES) - request_line


def test_percentiles_read_the_request_log_line_as_the_app_writes_it() -> None:
    [query] = [q for q in QUERIES if "percentiles(" in q]
    assert 'message startswith "request operation="' in query
    telemetry = (REPO / "shared" / "adapters" / "telemetry.py").read_text(encoding="utf-8")
    assert '"request operation=%s status=%d latency_ms=%.1f"' in telemetry


def test_the_alert_parameters_named_are_the_bicep_ones() -> None:
    named = set(re.findall(r"`((?:sweepBacklog|acsThrottle)Alert(?:Threshold|Window))`", DOC))
    params = BicepFile(REPO / "infra" / "main.bicep").params
    assert named == {name for name in params if name.startswith(("sweepBacklogAlert", "acsThrottleAlert"))}
    for name in named:
        default = (params[name].default or "").strip("'")
        assert f"`{name}` ({default})" in DOC or f"`{name}` (`{default}`)" in DOC, name
