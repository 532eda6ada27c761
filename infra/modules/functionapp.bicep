// The Function App on a Flex Consumption plan, its app settings, CORS and (optionally)
// App Service Authentication (Easy Auth).
//
// Flex Consumption notes:
// - The runtime (python, pythonVersion: 3.13 by default) is set in functionAppConfig.runtime. On 3.13 the
//   Functions Python runtime itself is the azure-functions-runtime that requirements.txt pins. FUNCTIONS_WORKER_RUNTIME,
//   FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTSHARE and
//   WEBSITE_CONTENTAZUREFILECONNECTIONSTRING are not app settings on this plan (the platform
//   rejects or ignores them), so none is set here.
// - The deployment package lives in a blob container, reached with the managed identity.

param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string
@description('Client id of that identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsConnectionString string

@description('https://<acs>.communication.azure.com')
param acsEndpoint string

@description('Origins allowed to call the API from a browser (no "*" in production).')
param corsAllowedOrigins array = []

@description('Python version of the Flex Consumption runtime (Flex Consumption runs 3.10 to 3.13).')
@allowed(['3.11', '3.12', '3.13'])
param pythonVersion string = '3.13'

@allowed([2048, 4096])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100
@description('FUNCTIONS_REQUEST_BODY_SIZE_LIMIT in bytes: the host answers 413 to a larger body before buffering it (platform default 104857600, i.e. 100 MB per request).')
param requestBodySizeLimitBytes int = 17408

// --- caller authentication ----------------------------------------------------------
@description('true: App Service Authentication (Easy Auth) in front, AUTH_MODE=easyauth. false: AUTH_MODE=jwt.')
param enableEasyAuth bool = false
@description('Easy Auth: client id of the Entra app registration that represents this API.')
param easyAuthClientId string = ''
@description('Easy Auth: OpenID issuer, e.g. https://login.microsoftonline.com/<tenant-id>/v2.0 (or https://sts.windows.net/<tenant-id>/ for v1 tokens).')
param easyAuthIssuer string = ''
@description('Easy Auth: accepted token audiences (default: the client id and api://<client id>).')
param easyAuthAllowedAudiences array = []
@description('jwt: issuer exactly as in tokens\' iss claim.')
param authIssuer string = ''
@description('jwt: accepted aud values, comma-separated.')
param authAudience string = ''
@description('jwt: JWKS URL when discovery is not wanted (empty = discover from the issuer).')
param authJwksUrl string = ''
@description('Comma-separated roles/groups a caller needs (empty = any authenticated caller).')
param authRequiredRoles string = ''
@description('jwt: the claim that names the user: oid (Entra ID, Entra External ID) or sub (Azure AD B2C, Auth0, Google, other OpenID issuers). One claim per deployment: changing it later is a migration (README "Who is the caller").')
@allowed(['oid', 'sub'])
param authUserClaim string = 'oid'
@description('jwt: scopes (scp/scope) a token needs one of, comma- or space-separated, e.g. access_as_user (empty = none required).')
param authRequiredScopes string = ''
@description('jwt: true lets applications\' own tokens (client credentials) get ACS identities; false = signed-in users\' delegated tokens only.')
@allowed(['false', 'true'])
param authAllowAppTokens string = 'false'
@description('jwt: the least number of seconds between two fetches of the issuer\'s signing keys, whatever their outcome.')
param authJwksMinIntervalSeconds string = '30'

// --- app behaviour (see README "Settings") --------------------------------------------
param identityTableName string = 'acsidentities'
param tokenAllowedScopes string = 'chat,voip'
param tokenDefaultScopes string = 'chat,voip'
param tokenDefaultExpiryMinutes string = '1440'
param tokenMaxExpiryMinutes string = '1440'
param tokenRateLimitPerMinute string = '10'
param revokeRateLimitPerHour string = '6'
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
param auditTableName string = 'acsaudit'
param auditRetentionDays string = '90'

var storageSuffix = environment().suffixes.storage

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storageAccountName}.blob.${storageSuffix}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Every setting the code reads in Azure (tests/infra checks this list against the code).
// Deliberately absent: ACS_CONNECTION_STRING (keys; Entra ID is used instead),
// ACS_CA_BUNDLE (local emulator only), AUTH_DEV_ALLOW_IN_AZURE (dev auth stays impossible).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Functions host storage, identity-based (no AccountKey anywhere).
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${storageSuffix}'
    AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${storageSuffix}'
    AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${storageSuffix}'
    // Telemetry: connection string, sent with the managed identity's Entra token.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // ACS through Entra ID with the user-assigned identity.
    ACS_ENDPOINT: acsEndpoint
    AZURE_CLIENT_ID: identityClientId
    IDENTITY_TABLE_NAME: identityTableName
    // Caller authentication: never 'dev' in Azure.
    AUTH_MODE: enableEasyAuth ? 'easyauth' : 'jwt'
    AUTH_ISSUER: authIssuer
    AUTH_AUDIENCE: authAudience
    AUTH_JWKS_URL: authJwksUrl
    AUTH_REQUIRED_ROLES: authRequiredRoles
    AUTH_USER_CLAIM: authUserClaim
    AUTH_REQUIRED_SCOPES: authRequiredScopes
    AUTH_ALLOW_APP_TOKENS: authAllowAppTokens
    AUTH_JWKS_MIN_INTERVAL_SECONDS: authJwksMinIntervalSeconds
    // Token policy.
    TOKEN_ALLOWED_SCOPES: tokenAllowedScopes
    TOKEN_DEFAULT_SCOPES: tokenDefaultScopes
    TOKEN_DEFAULT_EXPIRY_MINUTES: tokenDefaultExpiryMinutes
    TOKEN_MAX_EXPIRY_MINUTES: tokenMaxExpiryMinutes
    TOKEN_RATE_LIMIT_PER_MINUTE: tokenRateLimitPerMinute
    REVOKE_RATE_LIMIT_PER_HOUR: revokeRateLimitPerHour
    TOKEN_FLEET_RATE_PER_30S: tokenFleetRatePer30s
    // Revocation sweep.
    REVOCATION_SCHEDULE: revocationSchedule
    REVOCATION_TABLE_NAME: revocationTableName
    REVOCATION_QUEUE_NAME: revocationQueueName
    REVOCATION_RATE_PER_30S: revocationRatePer30s
    REVOCATION_CONCURRENCY: revocationConcurrency
    REVOCATION_TIME_BUDGET_SECONDS: revocationTimeBudgetSeconds
    REVOCATION_BATCH_SIZE: revocationBatchSize
    MAX_SESSION_HOURS: maxSessionHours
    IDENTITY_RETENTION_DAYS: identityRetentionDays
    AUDIT_TABLE_NAME: auditTableName
    AUDIT_RETENTION_DAYS: auditRetentionDays
    // The Functions host's own request body limit (read by the host, not the app): just above the
    // app's 16 KiB, so no caller can make an instance buffer 100 MB before the app says 413.
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string(requestBodySizeLimitBytes)
  }
}

// App Service Authentication as a bearer-token validator for an API: no login redirect,
// no client secret, no token store. /api/health stays reachable without a token.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (enableEasyAuth) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Health probes, and the operators' endpoints, which the host's function key protects
      // (operators call them with x-functions-key, not with a signed-in user's session).
      excludedPaths: [
        '/api/health'
        '/api/ops/revocations'
        '/api/ops/revocations/status'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: easyAuthClientId
          openIdIssuer: easyAuthIssuer
        }
        validation: {
          allowedAudiences: empty(easyAuthAllowedAudiences) ? [
            easyAuthClientId
            'api://${easyAuthClientId}'
          ] : easyAuthAllowedAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
