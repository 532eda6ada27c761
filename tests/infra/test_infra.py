"""The deployment kit (infra/, azure.yaml) matches what the code needs, with no keys.

Without a Bicep compiler here, these tests read the Bicep source (tests/infra/bicep_text.py)
and check what matters: every app setting the code reads in Azure is set, local-only ones
are not, storage is identity-only, the identity has its roles, modules and their
parameters line up, and azd's files are well-formed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from shared import settings as app_settings
from shared.functions.bodies import MAX_BODY_BYTES
from tests.infra.bicep_text import BicepFile, top_level_entries, unquote

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"

# ---------------------------------------------------------------------------- the one list
#: Settings the code reads that the infra must set on the Function App.
AZURE_SETTINGS: frozenset[str] = frozenset(
    {
        "ACS_ENDPOINT",
        "AZURE_CLIENT_ID",
        "IDENTITY_TABLE_NAME",
        "AUTH_MODE",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_JWKS_URL",
        "AUTH_REQUIRED_ROLES",
        "AUTH_USER_CLAIM",
        "AUTH_REQUIRED_SCOPES",
        "AUTH_ALLOW_APP_TOKENS",
        "AUTH_JWKS_MIN_INTERVAL_SECONDS",
        "TOKEN_ALLOWED_SCOPES",
        "TOKEN_DEFAULT_SCOPES",
        "TOKEN_DEFAULT_EXPIRY_MINUTES",
        "TOKEN_MAX_EXPIRY_MINUTES",
        "TOKEN_RATE_LIMIT_PER_MINUTE",
        "REVOKE_RATE_LIMIT_PER_HOUR",
        "TOKEN_FLEET_RATE_PER_30S",
        "REVOCATION_SCHEDULE",
        "REVOCATION_TABLE_NAME",
        "REVOCATION_QUEUE_NAME",
        "REVOCATION_RATE_PER_30S",
        "REVOCATION_CONCURRENCY",
        "REVOCATION_TIME_BUDGET_SECONDS",
        "REVOCATION_BATCH_SIZE",
        "MAX_SESSION_HOURS",
        "IDENTITY_RETENTION_DAYS",
        "AUDIT_TABLE_NAME",
        "AUDIT_RETENTION_DAYS",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    }
)
#: Read by the code, but never set in Azure: keys, the emulator's certificate, dev auth,
#: and the key-based storage connection string (identity-based settings replace it).
LOCAL_ONLY: frozenset[str] = frozenset(
    {"ACS_CONNECTION_STRING", "ACS_CA_BUNDLE", "AUTH_DEV_ALLOW_IN_AZURE", "AzureWebJobsStorage"}
)
#: Optional overrides an operator may add (documented in the README), deliberately not set by the
#: infra: without USER_REF_KEY the app generates its user-reference key once and keeps it in storage.
OPERATOR_OPTIONAL: frozenset[str] = frozenset({"USER_REF_KEY"})
#: Set by the platform itself on every instance.
PLATFORM: frozenset[str] = frozenset({"WEBSITE_INSTANCE_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT"})
#: Read by the Functions host itself (not by the app's code), and set both in infra and in the
#: local settings sample: the host's request body limit (see the test below).
HOST_SETTINGS: frozenset[str] = frozenset({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"})
#: In local.settings.json for Core Tools only: on Flex Consumption the runtime lives in
#: functionAppConfig and worker indexing is the default.
LOCAL_HOST_ONLY: frozenset[str] = frozenset({"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags"})
#: Rejected or meaningless as app settings on Flex Consumption.
NOT_ON_FLEX: frozenset[str] = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "ENABLE_ORYX_BUILD",
    }
)

_NAME = r"([A-Za-z_][A-Za-z0-9_]*)"
_READ_PATTERNS = [
    re.compile(r"\b_(?:get|int|bool|csv|url|table_name|queue_name)\(\s*env\s*,\s*\"" + _NAME + '"'),
    re.compile(r"\benv(?:iron)?\.get\(\s*\"" + _NAME + '"'),
    re.compile(r"\bgetenv\(\s*\"" + _NAME + '"'),
    re.compile(r"\benviron\[\s*\"" + _NAME + r'"\s*\]'),
    re.compile(r"_SETTING\s*=\s*\"" + _NAME + '"'),
    re.compile(r"%([A-Z][A-Za-z0-9_]{2,})%"),  # binding expressions: schedule="%NAME%"
    re.compile(r"\bconnection\s*=\s*\"" + _NAME + '"'),  # trigger connections (a settings prefix)
]


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in [REPO / "function_app.py", *sorted((REPO / "shared").rglob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        for pattern in _READ_PATTERNS:
            names.update(pattern.findall(text))
    return names


def infra_app_settings() -> dict[str, str]:
    bicep = BicepFile(FUNCTION_APP)
    [config] = [d for d in bicep.resources("Microsoft.Web/sites/config") if unquote(d.entries["name"]) == "appsettings"]
    return config.object("properties")


def all_infra_code() -> str:
    """Every infra file's text, Bicep comments removed (comments may name what is left out)."""
    parts = [BicepFile(p).text for p in sorted(INFRA.rglob("*.bicep"))]
    parts += [p.read_text(encoding="utf-8") for p in sorted(INFRA.rglob("*.json"))]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- app settings


def test_the_list_covers_every_setting_the_code_reads() -> None:
    read = settings_read_by_code()
    assert {"ACS_ENDPOINT", "AUTH_MODE", "REVOCATION_SCHEDULE", "APPLICATIONINSIGHTS_CONNECTION_STRING"} <= read  # the scan works
    unclassified = read - AZURE_SETTINGS - LOCAL_ONLY - PLATFORM - OPERATOR_OPTIONAL
    assert not unclassified, f"new setting(s) {sorted(unclassified)}: add them to infra and to AZURE_SETTINGS (or LOCAL_ONLY)"


def test_the_list_names_nothing_the_code_no_longer_reads() -> None:
    read = settings_read_by_code()
    host_storage = {n for n in AZURE_SETTINGS if n.startswith("AzureWebJobsStorage__")}  # read by the Functions host
    stale = AZURE_SETTINGS - read - host_storage
    assert not stale, f"{sorted(stale)} are listed (and set in infra) but no code reads them"


def test_local_settings_sample_names_are_classified() -> None:
    values = json.loads((REPO / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    unclassified = set(values) - AZURE_SETTINGS - LOCAL_ONLY - PLATFORM - LOCAL_HOST_ONLY - HOST_SETTINGS
    assert not unclassified, sorted(unclassified)


def test_infra_sets_every_azure_setting() -> None:
    missing = AZURE_SETTINGS - set(infra_app_settings())
    assert not missing, sorted(missing)


def test_request_body_limit_is_set_just_above_the_apps_own_limit_in_bicep_and_the_sample() -> None:
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (Microsoft Learn, "App settings reference for Azure Functions":
    overrides the host's body limit, in bytes, default 104,857,600; read by Azure/azure-functions-host
    ``Middleware/HttpRequestBodySizeMiddleware.cs``). Above the app's 16 KiB so the app still answers
    its own JSON 413 up to the limit; far below 100 MB so no caller can make an instance buffer that."""
    value = infra_app_settings()["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"]
    assert value == "string(requestBodySizeLimitBytes)", value
    defaults = set()
    for path in (FUNCTION_APP, MAIN):
        declared = BicepFile(path).params["requestBodySizeLimitBytes"]
        assert declared.type == "int" and declared.default is not None, (path.name, declared)
        defaults.add(int(declared.default))
    [api] = [m for m in BicepFile(MAIN).declarations("module") if m.target == "modules/functionapp.bicep"]
    assert api.object("params")["requestBodySizeLimitBytes"] == "requestBodySizeLimitBytes"
    sample = json.loads((REPO / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    [limit] = defaults  # the same in both Bicep files
    assert int(sample["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"]) == limit  # and locally (devhost honours it)
    assert MAX_BODY_BYTES < limit <= 64 * 1024 < 104_857_600


def test_infra_sets_no_local_only_or_flex_deprecated_setting() -> None:
    configured = set(infra_app_settings())
    assert not configured & LOCAL_ONLY
    assert not configured & NOT_ON_FLEX
    code = all_infra_code()
    for name in LOCAL_ONLY - {"AzureWebJobsStorage"} | NOT_ON_FLEX:
        assert not re.search(rf"\b{name}\b", code), name


def test_dev_auth_cannot_be_configured_in_azure() -> None:
    value = infra_app_settings()["AUTH_MODE"]
    assert re.fullmatch(r"enableEasyAuth\s*\?\s*'easyauth'\s*:\s*'jwt'", value), value
    assert "'dev'" not in all_infra_code()


def test_acs_endpoint_comes_from_the_acs_resource_host_name() -> None:
    assert infra_app_settings()["ACS_ENDPOINT"] == "acsEndpoint"
    main = BicepFile(MAIN)
    [api] = [m for m in main.declarations("module") if m.target == "modules/functionapp.bicep"]
    assert api.object("params")["acsEndpoint"] == "acs.outputs.endpoint"
    acs = BicepFile(INFRA / "modules" / "acs.bicep")
    assert re.search(r"output endpoint string = 'https://\$\{.*properties\.hostName.*\}'", acs.text)


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("IDENTITY_TABLE_NAME", "acsidentities"),
        ("AUTH_USER_CLAIM", "oid"),
        ("AUTH_REQUIRED_SCOPES", ""),
        ("AUTH_ALLOW_APP_TOKENS", "false"),
        ("AUTH_JWKS_MIN_INTERVAL_SECONDS", "30"),
        ("TOKEN_ALLOWED_SCOPES", "chat,voip"),
        ("TOKEN_DEFAULT_SCOPES", "chat,voip"),
        ("TOKEN_DEFAULT_EXPIRY_MINUTES", "1440"),
        ("TOKEN_MAX_EXPIRY_MINUTES", "1440"),
        ("TOKEN_RATE_LIMIT_PER_MINUTE", "10"),
        ("REVOKE_RATE_LIMIT_PER_HOUR", "6"),
        ("TOKEN_FLEET_RATE_PER_30S", "0"),
        ("REVOCATION_SCHEDULE", "0 */5 * * * *"),
        ("REVOCATION_TABLE_NAME", "acsrevocations"),
        ("REVOCATION_QUEUE_NAME", "acs-revocations"),
        ("REVOCATION_RATE_PER_30S", "400"),
        ("REVOCATION_CONCURRENCY", "8"),
        ("REVOCATION_TIME_BUDGET_SECONDS", "240"),
        ("REVOCATION_BATCH_SIZE", "200"),
        ("MAX_SESSION_HOURS", "0"),
        ("IDENTITY_RETENTION_DAYS", "0"),
        ("AUDIT_TABLE_NAME", "acsaudit"),
        ("AUDIT_RETENTION_DAYS", "90"),
    ],
)
def test_defaults_in_both_bicep_files(setting: str, expected: str) -> None:
    param = infra_app_settings()[setting]
    for path in (FUNCTION_APP, MAIN):
        declared = BicepFile(path).params[param]
        assert declared.default is not None and unquote(declared.default) == expected, (path.name, declared)


def test_bicep_defaults_are_valid_settings_for_the_code() -> None:
    """Loading the deployed defaults with the app's own parser succeeds and matches its defaults."""
    configured = infra_app_settings()
    params = BicepFile(FUNCTION_APP).params
    env = {}
    for name, value in configured.items():
        if value in params and params[value].default is not None:
            env[name] = unquote(params[value].default)
    assert app_settings.load_revocation_settings(env) == app_settings.load_revocation_settings({})
    assert app_settings.load_token_policy(env) == app_settings.load_token_policy({})
    jwt_mode = {"AUTH_MODE": "jwt", "AUTH_ISSUER": "https://login.example.com/t/v2.0", "AUTH_AUDIENCE": "api://x"}
    assert app_settings.load_auth_settings({**env, **jwt_mode}) == app_settings.load_auth_settings(jwt_mode)


# ---------------------------------------------------------------------------- Flex Consumption


def test_function_app_is_flex_consumption_python_313_with_identity_deployment() -> None:
    bicep = BicepFile(FUNCTION_APP)
    [plan] = bicep.resources("Microsoft.Web/serverfarms")
    assert plan.object("sku") == {"tier": "'FlexConsumption'", "name": "'FC1'"}
    [site] = bicep.resources("Microsoft.Web/sites")
    assert site.object("properties", "functionAppConfig", "runtime") == {"name": "'python'", "version": "pythonVersion"}
    # 3.13 by default; 3.11/3.12 stay deployable (Flex Consumption runs Python 3.10-3.13: Microsoft Learn,
    # "Supported languages in Azure Functions"; azure-functions-doctor's compatibility catalog agrees).
    for file in (MAIN, FUNCTION_APP):
        assert BicepFile(file).params["pythonVersion"].default == "'3.13'"
        assert "@allowed(['3.11', '3.12', '3.13'])\nparam pythonVersion" in BicepFile(file).text
    [api] = [m for m in BicepFile(MAIN).declarations("module") if m.symbol == "api"]
    assert api.object("params")["pythonVersion"] == "pythonVersion"
    storage = site.object("properties", "functionAppConfig", "deployment", "storage")
    assert unquote(storage["type"]) == "blobContainer"
    auth = top_level_entries(storage["authentication"])
    assert unquote(auth["type"]) == "UserAssignedIdentity"
    assert auth["userAssignedIdentityResourceId"] == "identityId"
    identity = site.object("identity")
    assert unquote(identity["type"]) == "UserAssigned"
    assert "'azd-service-name': 'api'" in site.entries["tags"]
    assert site.object("properties")["httpsOnly"] == "true"


def test_cors_origins_are_a_parameter() -> None:
    [site] = BicepFile(FUNCTION_APP).resources("Microsoft.Web/sites")
    assert site.object("properties", "siteConfig", "cors")["allowedOrigins"] == "corsAllowedOrigins"
    main = BicepFile(MAIN)
    assert main.params["corsAllowedOrigins"].default == "''"
    assert "'*'" not in main.params["corsAllowedOrigins"].default


def test_easy_auth_is_optional_and_needs_no_secret() -> None:
    bicep = BicepFile(FUNCTION_APP)
    [auth] = [d for d in bicep.resources("Microsoft.Web/sites/config") if unquote(d.entries["name"]) == "authsettingsV2"]
    assert auth.condition == "enableEasyAuth"
    assert bicep.params["enableEasyAuth"].default == "false"
    validation = auth.object("properties", "globalValidation")
    assert validation["requireAuthentication"] == "true"
    assert unquote(validation["unauthenticatedClientAction"]) == "Return401"
    aad = auth.object("properties", "identityProviders", "azureActiveDirectory")
    registration = top_level_entries(aad["registration"])
    assert registration == {"clientId": "easyAuthClientId", "openIdIssuer": "easyAuthIssuer"}
    assert "secret" not in auth.body.lower()


# ---------------------------------------------------------------------------- keys and roles


def test_no_storage_key_or_key_based_connection_string_anywhere() -> None:
    code = all_infra_code()
    for forbidden in (
        "listKeys",
        "AccountKey",
        "accountKey",
        "primaryKey",
        "accesskey",
        "SharedAccessSignature",
        "listAccountSas",
    ):
        assert forbidden.lower() not in code.lower(), forbidden
    [storage] = BicepFile(INFRA / "modules" / "storage.bicep").resources("Microsoft.Storage/storageAccounts")
    properties = storage.object("properties")
    assert properties["allowSharedKeyAccess"] == "false"
    assert properties["allowBlobPublicAccess"] == "false"
    settings = infra_app_settings()
    assert unquote(settings["AzureWebJobsStorage__credential"]) == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == settings["AZURE_CLIENT_ID"] == "identityClientId"


def test_identity_has_the_storage_roles_the_host_and_app_need() -> None:
    text = BicepFile(INFRA / "modules" / "storage.bicep").text
    for role_guid in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor (queue triggers, fan-out)
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor (identity map, ledger)
    ):
        assert role_guid in text, role_guid
    [assignments] = BicepFile(INFRA / "modules" / "storage.bicep").resources("Microsoft.Authorization/roleAssignments")
    assert assignments.entries["scope"] == "storage"


ACS_ROLE = "09976791-48a7-449e-bb21-39d1a415f350"  # Communication and Email Service Owner


def test_identity_has_a_role_on_the_acs_resource() -> None:
    acs = BicepFile(INFRA / "modules" / "acs.bicep")
    assignments = acs.resources("Microsoft.Authorization/roleAssignments")
    assert {a.entries["scope"] for a in assignments} == {"newAcs", "existingAcs"}
    assert {a.condition for a in assignments} == {"createNew", "!createNew"}
    for assignment in assignments:
        properties = assignment.object("properties")
        assert "roleDefinitionId" in properties["roleDefinitionId"]
        assert properties["principalId"] == "principalId"
    main = BicepFile(MAIN)
    assert unquote(main.params["acsRoleDefinitionId"].default or "") == ACS_ROLE
    [module] = [m for m in main.declarations("module") if m.target == "modules/acs.bicep"]
    params = module.object("params")
    assert params["roleDefinitionId"] == "acsRoleDefinitionId"
    assert params["principalId"] == "identity.outputs.principalId"
    docs = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert ACS_ROLE in docs and "Communication and Email Service Owner" in docs


def test_existing_acs_resource_can_be_used() -> None:
    main = BicepFile(MAIN)
    assert main.params["existingAcsResourceId"].default == "''"
    [module] = [m for m in main.declarations("module") if m.target == "modules/acs.bicep"]
    assert "acsIdParts[2]" in module.entries["scope"] and "acsIdParts[4]" in module.entries["scope"]
    assert module.object("params")["createNew"] == "createAcs"


def test_telemetry_goes_to_application_insights_with_entra_auth() -> None:
    settings = infra_app_settings()
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsightsConnectionString"
    assert "Authorization=AAD" in settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    monitoring = BicepFile(INFRA / "modules" / "monitoring.bicep")
    assert "3913510d-42f4-4e42-8a64-420c390055eb" in monitoring.text  # Monitoring Metrics Publisher
    assert monitoring.resources("Microsoft.OperationalInsights/workspaces")
    [insights] = monitoring.resources("Microsoft.Insights/components")
    assert insights.object("properties")["WorkspaceResourceId"] == "logAnalytics.id"


# ---------------------------------------------------------------------------- wiring and azd


def test_modules_exist_and_their_parameters_line_up() -> None:
    main = BicepFile(MAIN)
    modules = main.declarations("module")
    assert {m.target for m in modules} == {str(p.relative_to(INFRA)) for p in (INFRA / "modules").glob("*.bicep")}
    for module in modules:
        declared = BicepFile(INFRA / module.target).params
        passed = set(module.object("params"))
        assert passed <= set(declared), (module.target, sorted(passed - set(declared)))
        required = {name for name, p in declared.items() if p.default is None}
        assert required <= passed, (module.target, sorted(required - passed))


def test_main_parameters_file_is_azd_style_and_names_real_parameters() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    parameters = document["parameters"]
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    assert parameters["pythonVersion"]["value"] == "${PYTHON_VERSION=3.13}"  # azd env set PYTHON_VERSION 3.11 to stay
    declared = BicepFile(MAIN).params
    assert set(parameters) <= set(declared), sorted(set(parameters) - set(declared))
    required = {name for name, p in declared.items() if p.default is None}
    assert required <= set(parameters)


def test_azure_yaml_names_the_python_function_service() -> None:
    document = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    assert document["name"]
    api = document["services"]["api"]
    # remoteBuild: pip runs on the deployed Python, so requirements.txt's markers choose for 3.13 (test_requirements.py).
    assert api == {"project": ".", "language": "python", "host": "function", "remoteBuild": True}
    assert document.get("infra", {}).get("path", "infra") == "infra"


def test_bicep_parses_with_an_independent_parser() -> None:
    """A second opinion on syntax when pycep-parser (a Python Bicep grammar) is installed."""
    pycep = pytest.importorskip("pycep")
    parser = pycep.BicepParser()
    for path in sorted(INFRA.rglob("*.bicep")):
        document = parser.parse(text=path.read_text(encoding="utf-8"))
        assert document.get("resources") or document.get("modules"), path
