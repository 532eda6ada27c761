"""The alert rules (infra/modules/alerts.bicep) watch the metrics the app really exports, with valid settings.

No Bicep compiler here (see bicep_text.py): the rules are read from source and checked against the
code they watch (metric names in shared/domain/metrics.py, the attributes shared/adapters/metrics.py
exports, the throttled error's code) and against the resource schema in Azure/azure-rest-api-specs,
specification/monitor/resource-manager/Microsoft.Insights/stable/2023-12-01/scheduledQueryRule_API.json
(Condition.timeAggregation, Condition.operator, Dimension.operator enums; kind LogAlert) and
stable/2023-01-01/actionGroups_API.json (ActionGroup.groupShortName maxLength 12).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.adapters.metrics import ATTRIBUTE_VALUES, GAUGES
from shared.domain.errors import ThrottledError
from shared.domain.metrics import ACS_ERRORS, SWEEP_BACKLOG
from tests.infra.bicep_text import BicepFile, Declaration, top_level_entries, unquote

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "infra" / "main.bicep"
ALERTS = REPO / "infra" / "modules" / "alerts.bicep"

# The 2023-12-01 schema's enums (see the module docstring).
TIME_AGGREGATIONS = {"Count", "Average", "Minimum", "Maximum", "Total"}
OPERATORS = {"Equals", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"}
DIMENSION_OPERATORS = {"Include", "Exclude"}
RULE_API = "Microsoft.Insights/scheduledQueryRules@2023-12-01"
ACTION_GROUP_API = "Microsoft.Insights/actionGroups@2023-01-01"


def minutes(iso: str) -> int:
    match = re.fullmatch(r"PT(\d+)([MH])", iso)
    assert match, iso
    return int(match.group(1)) * (60 if match.group(2) == "H" else 1)


def rules() -> dict[str, Declaration]:
    return {d.symbol: d for d in BicepFile(ALERTS).resources("Microsoft.Insights/scheduledQueryRules")}


def condition(rule: Declaration) -> dict[str, str]:
    """The rule's one condition (criteria.allOf[0])."""
    all_of = rule.object("properties", "criteria")["allOf"]
    assert all_of.count("query:") == 1, "one condition per rule"
    return top_level_entries(all_of[all_of.index("{") : all_of.rindex("}") + 1])


def allowed_values(bicep: BicepFile, param: str) -> list[str]:
    match = re.search(r"@allowed\(\[([^\]]*)\]\)\s*\n(?:@[^\n]*\n)*param " + param + r"\b", bicep.text)
    assert match, param
    return [unquote(value) for value in match.group(1).split(",")]


def test_two_log_alert_rules_on_the_application_insights_resource() -> None:
    bicep = BicepFile(ALERTS)
    [insights] = bicep.resources("Microsoft.Insights/components")
    assert re.search(r"resource applicationInsights '[^']+' existing", bicep.text)
    assert insights.entries["name"] == "applicationInsightsName"
    found = rules()
    assert set(found) == {"sweepBacklogAlert", "acsThrottleAlert"}
    for rule in found.values():
        assert rule.target == RULE_API
        assert unquote(rule.entries["kind"]) == "LogAlert"
        assert rule.entries["location"] == "location"
        properties = rule.object("properties")
        assert re.fullmatch(r"\[\s*applicationInsights\.id\s*\]", properties["scopes"]), properties["scopes"]
        assert properties["enabled"] == "true" and properties["autoMitigate"] == "true"
        assert int(properties["severity"]) in range(5)
        cond = condition(rule)
        assert unquote(cond["timeAggregation"]) in TIME_AGGREGATIONS
        assert unquote(cond["operator"]) in OPERATORS
        assert cond["query"].startswith("'customMetrics | where name == ")  # the table the app's metrics land in
        assert re.search(r"\| project timestamp, .*" + unquote(cond["metricMeasureColumn"]) + r" = valueSum'$", cond["query"])


def test_evaluation_fits_every_allowed_window() -> None:
    bicep = BicepFile(ALERTS)
    for rule in rules().values():
        properties = rule.object("properties")
        frequency = minutes(unquote(properties["evaluationFrequency"]))
        window_param = properties["windowSize"]
        assert window_param in bicep.params, "the window is a parameter"
        windows = allowed_values(bicep, window_param)
        assert unquote(bicep.params[window_param].default or "") in windows
        assert all(minutes(window) >= frequency for window in windows), (rule.symbol, windows)


def test_backlog_rule_needs_every_sweep_run_in_the_window_above_the_threshold() -> None:
    assert SWEEP_BACKLOG in GAUGES  # one row per sweep run: Minimum over the window = every run
    cond = condition(rules()["sweepBacklogAlert"])
    assert f'where name == "{SWEEP_BACKLOG}"' in cond["query"]
    assert unquote(cond["timeAggregation"]) == "Minimum"
    assert unquote(cond["operator"]) == "GreaterThan"
    assert cond["threshold"] == "sweepBacklogThreshold"


def test_throttle_rule_counts_acs_errors_with_the_throttled_code_per_operation() -> None:
    cond = condition(rules()["acsThrottleAlert"])
    query = cond["query"]
    assert f'where name == "{ACS_ERRORS}"' in query
    assert f'tostring(customDimensions.code) == "{ThrottledError.code}"' in query
    assert "tostring(customDimensions.operation)" in query
    assert {"code", "operation"} <= set(ATTRIBUTE_VALUES)  # the attributes the adapter exports
    assert unquote(cond["timeAggregation"]) == "Total"
    assert cond["threshold"] == "acsThrottleThreshold"
    dimension = top_level_entries(cond["dimensions"][cond["dimensions"].index("{") : cond["dimensions"].rindex("}") + 1])
    assert unquote(dimension["name"]) == "operation"
    assert unquote(dimension["operator"]) in DIMENSION_OPERATORS
    assert re.fullmatch(r"\[\s*'\*'\s*\]", dimension["values"])


def test_email_action_group_only_when_an_address_is_given() -> None:
    bicep = BicepFile(ALERTS)
    [group] = bicep.resources("Microsoft.Insights/actionGroups")
    assert group.target == ACTION_GROUP_API
    assert group.condition == "!empty(alertEmail)"
    assert unquote(group.entries["location"]) == "Global"
    properties = group.object("properties")
    assert 0 < len(unquote(properties["groupShortName"])) <= 12
    receiver = properties["emailReceivers"]
    assert "emailAddress: alertEmail" in receiver and "useCommonAlertSchema: true" in receiver
    assert bicep.params["alertEmail"].default == "''"
    assert re.search(r"var actionGroupIds = empty\(alertEmail\) \? \[\] : \[actionGroup\.id\]", bicep.text)
    for rule in rules().values():
        assert rule.object("properties", "actions") == {"actionGroups": "actionGroupIds"}


@pytest.mark.parametrize(
    "main_param, module_param",
    [
        ("alertEmail", "alertEmail"),
        ("sweepBacklogAlertThreshold", "sweepBacklogThreshold"),
        ("sweepBacklogAlertWindow", "sweepBacklogWindow"),
        ("acsThrottleAlertThreshold", "acsThrottleThreshold"),
        ("acsThrottleAlertWindow", "acsThrottleWindow"),
    ],
)
def test_main_passes_each_setting_with_the_same_default(main_param: str, module_param: str) -> None:
    main, module = BicepFile(MAIN), BicepFile(ALERTS)
    [alerts] = [m for m in main.declarations("module") if m.target == "modules/alerts.bicep"]
    assert alerts.object("params")[module_param] == main_param
    assert main.params[main_param].default == module.params[module_param].default
    assert main.params[main_param].type == module.params[module_param].type
    if main.params[main_param].type == "int":
        assert int(main.params[main_param].default or "0") >= 1


def test_alerts_are_deployed_by_default_on_the_apps_application_insights() -> None:
    main = BicepFile(MAIN)
    [alerts] = [m for m in main.declarations("module") if m.target == "modules/alerts.bicep"]
    assert alerts.condition == "enableAlerts" and main.params["enableAlerts"].default == "true"
    assert alerts.entries["scope"] == "rg"
    assert alerts.object("params")["applicationInsightsName"] == "monitoring.outputs.applicationInsightsName"
    parameters = json.loads((REPO / "infra" / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL=}"  # azd env set ALERT_EMAIL ops@example.com
