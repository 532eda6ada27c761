// ACS trusted token service: everything `azd up` deploys.
// Subscription scope so it can create the resource group and, when an existing ACS
// resource lives elsewhere, grant the app's identity a role on it in its own group.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region for everything but ACS (which is global). Must offer Flex Consumption.')
param location string

@description('Resource group to create (default: rg-<environmentName>).')
param resourceGroupName string = ''

// --- Azure Communication Services -----------------------------------------------------
@description('Resource id of an existing ACS resource to use; empty = create a new one.')
param existingAcsResourceId string = ''
@description('Data location of a new ACS resource.')
param acsDataLocation string = 'United States'
@description('''Role granted to the app's identity on the ACS resource. Default: Communication and
Email Service Owner (09976791-48a7-449e-bb21-39d1a415f350). Contributor
(b24988ac-6180-42a0-ab88-20f7382dd24c) is what Microsoft's Entra ID quickstart uses.''')
param acsRoleDefinitionId string = '09976791-48a7-449e-bb21-39d1a415f350'

// --- Function App -----------------------------------------------------------------------
@description('Python of the Function App. 3.13 (default): the Functions Python runtime is the one requirements.txt pins (azure-functions-runtime), azure-functions 2.x. 3.11 and 3.12 run the platform\'s built-in worker and azure-functions 1.x, from the same requirements.txt (see README, Python versions).')
@allowed(['3.11', '3.12', '3.13'])
param pythonVersion string = '3.13'
@description('Browser origins allowed by CORS, comma-separated, e.g. "https://app.example.com,https://admin.example.com". Never "*" in production.')
param corsAllowedOrigins string = ''
@allowed([2048, 4096])
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 100
@description('FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: the largest request body the Functions host accepts, in bytes (413 beyond, before the body is buffered). Just above the app\'s own 16 KiB limit, so the app still answers its JSON 413 up to here; the platform default is 104857600.')
param requestBodySizeLimitBytes int = 17408

// --- Caller authentication ---------------------------------------------------------------
@description('true: App Service Authentication (Easy Auth) validates callers, AUTH_MODE=easyauth; false: the app validates bearer tokens itself, AUTH_MODE=jwt.')
param enableEasyAuth bool = false
param easyAuthClientId string = ''
param easyAuthIssuer string = ''
param easyAuthAllowedAudiences array = []
@description('AUTH_MODE=jwt: issuer as in the tokens\' iss, e.g. https://login.microsoftonline.com/<tenant-id>/v2.0')
param authIssuer string = ''
@description('AUTH_MODE=jwt: accepted audiences, comma-separated (your API\'s client id / App ID URI).')
param authAudience string = ''
param authJwksUrl string = ''
param authRequiredRoles string = ''
@description('AUTH_MODE=jwt: the claim that names the user, oid (Entra ID, External ID) or sub (B2C, Auth0, Google, other OpenID issuers).')
@allowed(['oid', 'sub'])
param authUserClaim string = 'oid'
@description('AUTH_MODE=jwt: scopes a token needs one of, e.g. access_as_user (empty = none required).')
param authRequiredScopes string = ''
@allowed(['false', 'true'])
param authAllowAppTokens string = 'false'
param authJwksMinIntervalSeconds string = '30'

// --- Token policy and revocation sweep (defaults match shared/settings.py) ----------------
param identityTableName string = 'acsidentities'
param tokenAllowedScopes string = 'chat,voip'
param tokenDefaultScopes string = 'chat,voip'
param tokenDefaultExpiryMinutes string = '1440'
param tokenMaxExpiryMinutes string = '1440'
param tokenRateLimitPerMinute string = '10'
@description('Revokes and deletes per user per hour, per instance (0 = off): each can cost an ACS call from the resource\'s 500 per 30 s.')
param revokeRateLimitPerHour string = '6'
@description('Token issues (and identity creations) the whole fleet may ask ACS for per 30 s; beyond, 429 without calling ACS. 0 = off.')
param tokenFleetRatePer30s string = '0'
param revocationSchedule string = '0 */5 * * * *'
param revocationTableName string = 'acsrevocations'
param revocationQueueName string = 'acs-revocations'
param revocationRatePer30s string = '400'
param revocationConcurrency string = '8'
param revocationTimeBudgetSeconds string = '240'
param revocationBatchSize string = '200'
param maxSessionHours string = '0'
param identityRetentionDays string = '0'
@description('The audit trail\'s table, and how many days its entries are kept (pruned by the revocation sweep).')
param auditTableName string = 'acsaudit'
param auditRetentionDays string = '90'

// --- Alerts on the app's metrics (docs/monitoring.md) -------------------------------------
@description('Deploy the alert rules (revocation backlog, ACS throttling) on Application Insights.')
param enableAlerts bool = true
@description('Email address alerts are sent to; empty = no action group (fired alerts still show under Monitor > Alerts).')
param alertEmail string = ''
@description('Revocation requests waiting (acs_sweep_backlog) that every sweep run within sweepBacklogAlertWindow must exceed to alert.')
@minValue(1)
param sweepBacklogAlertThreshold int = 1000
@allowed(['PT15M', 'PT30M', 'PT45M', 'PT1H', 'PT2H', 'PT6H'])
param sweepBacklogAlertWindow string = 'PT30M'
@description('Calls of one ACS operation refused with 429 (acs_errors, code=throttled) within acsThrottleAlertWindow above which to alert.')
@minValue(0)
param acsThrottleAlertThreshold int = 10
@allowed(['PT5M', 'PT10M', 'PT15M', 'PT30M', 'PT1H'])
param acsThrottleAlertWindow string = 'PT15M'

var tags = { 'azd-env-name': environmentName }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}'
var corsOrigins = filter(map(split(corsAllowedOrigins, ','), origin => trim(origin)), origin => !empty(origin))
var createAcs = empty(existingAcsResourceId)
var newAcsName = 'acs-${resourceToken}'
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Communication/communicationServices/<name>
var acsIdParts = split(createAcs ? '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rgName}/providers/Microsoft.Communication/communicationServices/${newAcsName}' : existingAcsResourceId, '/')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    principalId: identity.outputs.principalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = if (enableAlerts) {
  name: 'alerts'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    location: location
    tags: tags
    alertEmail: alertEmail
    sweepBacklogThreshold: sweepBacklogAlertThreshold
    sweepBacklogWindow: sweepBacklogAlertWindow
    acsThrottleThreshold: acsThrottleAlertThreshold
    acsThrottleWindow: acsThrottleAlertWindow
  }
}

// The ACS resource and the identity's role on it, in the group that holds it
// (this deployment's group for a new one, wherever it lives for an existing one).
module acs 'modules/acs.bicep' = {
  name: 'acs-${resourceToken}' // unique: an existing ACS resource's group may hold other deployments
  scope: resourceGroup(acsIdParts[2], acsIdParts[4])
  dependsOn: [
    rg
  ]
  params: {
    createNew: createAcs
    name: acsIdParts[8]
    dataLocation: acsDataLocation
    tags: tags
    principalId: identity.outputs.principalId
    roleDefinitionId: acsRoleDefinitionId
  }
}

// Uses outputs of storage, monitoring and acs, so it starts only after their role
// assignments exist: the host never starts without access to its storage.
module api 'modules/functionapp.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    acsEndpoint: acs.outputs.endpoint
    corsAllowedOrigins: corsOrigins
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    requestBodySizeLimitBytes: requestBodySizeLimitBytes
    enableEasyAuth: enableEasyAuth
    easyAuthClientId: easyAuthClientId
    easyAuthIssuer: easyAuthIssuer
    easyAuthAllowedAudiences: easyAuthAllowedAudiences
    authIssuer: authIssuer
    authAudience: authAudience
    authJwksUrl: authJwksUrl
    authRequiredRoles: authRequiredRoles
    authUserClaim: authUserClaim
    authRequiredScopes: authRequiredScopes
    authAllowAppTokens: authAllowAppTokens
    authJwksMinIntervalSeconds: authJwksMinIntervalSeconds
    identityTableName: identityTableName
    tokenAllowedScopes: tokenAllowedScopes
    tokenDefaultScopes: tokenDefaultScopes
    tokenDefaultExpiryMinutes: tokenDefaultExpiryMinutes
    tokenMaxExpiryMinutes: tokenMaxExpiryMinutes
    tokenRateLimitPerMinute: tokenRateLimitPerMinute
    revokeRateLimitPerHour: revokeRateLimitPerHour
    tokenFleetRatePer30s: tokenFleetRatePer30s
    revocationSchedule: revocationSchedule
    revocationTableName: revocationTableName
    revocationQueueName: revocationQueueName
    revocationRatePer30s: revocationRatePer30s
    revocationConcurrency: revocationConcurrency
    revocationTimeBudgetSeconds: revocationTimeBudgetSeconds
    revocationBatchSize: revocationBatchSize
    maxSessionHours: maxSessionHours
    identityRetentionDays: identityRetentionDays
    auditTableName: auditTableName
    auditRetentionDays: auditRetentionDays
  }
}

// azd reads these into the environment (.azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.defaultHostName}'
output API_BASE_URL string = 'https://${api.outputs.defaultHostName}/api'
output ACS_ENDPOINT string = acs.outputs.endpoint
output AZURE_CLIENT_ID string = identity.outputs.clientId
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
