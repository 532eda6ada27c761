// The Azure Communication Services resource (created here, or an existing one) and the
// role assignment that lets the app's managed identity call its Identity data plane
// (create/delete identities, issue/revoke tokens, exchange Teams tokens).
// Deployed into the resource group that holds (or will hold) the ACS resource.
//
// Which role: ACS has no data-plane ("dataActions") role for its Identity API and does not
// honour custom roles; Entra-authenticated calls are authorized by a built-in role on the
// resource. The narrowest built-in one is "Communication and Email Service Owner"
// (09976791-48a7-449e-bb21-39d1a415f350): Microsoft.Communication/* actions only, on the
// one resource, instead of Contributor (every action on every resource type at the scope),
// which Microsoft's "Authenticate using Microsoft Entra ID" quickstart assigns.
// Both are powerful (they include ListKeys); that is the floor ACS offers today.
// See docs/deploy.md, "Why this ACS role".

@description('Create a new ACS resource (true) or use the existing one named below (false).')
param createNew bool

@description('Name of the ACS resource (new, or existing in this resource group).')
param name string

@description('Where ACS stores data at rest (new resource only), e.g. "United States", "Europe".')
param dataLocation string = 'United States'

param tags object = {}

@description('Principal id of the managed identity that calls the ACS Identity API.')
param principalId string

@description('Role definition GUID granted to the identity on the ACS resource.')
param roleDefinitionId string

resource newAcs 'Microsoft.Communication/communicationServices@2023-04-01' = if (createNew) {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource existingAcs 'Microsoft.Communication/communicationServices@2023-04-01' existing = if (!createNew) {
  name: name
}

resource newAcsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (createNew) {
  name: guid(resourceId('Microsoft.Communication/communicationServices', name), principalId, roleDefinitionId)
  scope: newAcs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource existingAcsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!createNew) {
  name: guid(resourceId('Microsoft.Communication/communicationServices', name), principalId, roleDefinitionId)
  scope: existingAcs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output id string = resourceId('Microsoft.Communication/communicationServices', name)
// ACS_ENDPOINT: https://<name>.<region-group>.communication.azure.com
output endpoint string = 'https://${createNew ? newAcs!.properties.hostName : existingAcs!.properties.hostName}'
