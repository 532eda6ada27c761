// Alert rules on the app's own metrics (docs/monitoring.md): a revocation backlog that stays high,
// and ACS throttling. Log search alerts over Application Insights' customMetrics table, where the
// app's OpenTelemetry metrics land (shared/adapters/metrics.py); an email action group only when an
// address is given (without one, fired alerts still show under Monitor > Alerts).
// API versions: scheduledQueryRules 2023-12-01 and actionGroups 2023-01-01, both stable
// (Azure/azure-rest-api-specs, specification/monitor/resource-manager/Microsoft.Insights/stable/).

@description('Name of the Application Insights resource the app exports to.')
param applicationInsightsName string
param location string
param tags object = {}

@description('Email address for alert notifications; empty = no action group.')
param alertEmail string = ''

@description('Alert when every revocation sweep run within the window counted more requests waiting than this (acs_sweep_backlog).')
@minValue(1)
param sweepBacklogThreshold int = 1000
@description('How long the backlog must stay above the threshold. The sweep runs every REVOCATION_SCHEDULE (5 minutes by default), so a window holds several runs.')
@allowed(['PT15M', 'PT30M', 'PT45M', 'PT1H', 'PT2H', 'PT6H'])
param sweepBacklogWindow string = 'PT30M'

@description('Alert when more calls of one ACS operation than this failed with 429 within the window (acs_errors, code=throttled).')
@minValue(0)
param acsThrottleThreshold int = 10
@allowed(['PT5M', 'PT10M', 'PT15M', 'PT30M', 'PT1H'])
param acsThrottleWindow string = 'PT15M'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${applicationInsightsName}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'acstokens' // at most 12 characters (the API's maxLength)
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroupIds = empty(alertEmail) ? [] : [actionGroup.id]

// One row per sweep run (the gauge reports each value once), so the minimum over the window is above
// the threshold only if every run in it was.
resource sweepBacklogAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-sweep-backlog-${applicationInsightsName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ACS token service: revocation backlog above ${sweepBacklogThreshold}'
    description: 'Every revocation sweep run in the window found more than ${sweepBacklogThreshold} requests waiting: the sweep is not keeping up, or ACS keeps failing it. See docs/monitoring.md.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: sweepBacklogWindow
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "acs_sweep_backlog" | project timestamp, backlog = valueSum'
          timeAggregation: 'Minimum'
          metricMeasureColumn: 'backlog'
          operator: 'GreaterThan'
          threshold: sweepBacklogThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

// Counted after retries: a user-facing call the SDK's two retries got through is not a failure; the
// sweep retries nothing itself, so each 429 it meets is one count.
resource acsThrottleAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-acs-throttling-${applicationInsightsName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ACS token service: ACS is throttling'
    description: 'More than ${acsThrottleThreshold} calls of one ACS operation were refused with 429 within the window: users get 429 throttled or the sweep slows down. See docs/monitoring.md.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: acsThrottleWindow
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "acs_errors" and tostring(customDimensions.code) == "throttled" | extend operation = tostring(customDimensions.operation) | project timestamp, operation, throttled = valueSum'
          timeAggregation: 'Total'
          metricMeasureColumn: 'throttled'
          dimensions: [
            {
              name: 'operation'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: acsThrottleThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

output sweepBacklogAlertId string = sweepBacklogAlert.id
output acsThrottleAlertId string = acsThrottleAlert.id
