// The Function App's storage account: host state (blobs, queues for triggers, timers),
// the Flex Consumption deployment package container, the identity map and the
// revocation ledger (tables) and the revocation fan-out queue.
// Reached with the managed identity only: shared-key (account key) access is disabled,
// so no connection string with a key exists anywhere.

param name string
param location string
param tags object = {}

@description('Blob container Flex Consumption deploys the app package into.')
param deploymentContainerName string

@description('Principal id of the managed identity that gets data-plane roles on this account.')
param principalId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false // identity-based access only: no account keys in use
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobServices 'blobServices' = {
    name: 'default'
    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
      properties: {
        publicAccess: 'None'
      }
    }
  }
}

// Built-in data-plane roles (role definition GUIDs are the same in every tenant).
var roles = {
  // Host leases, timer schedule status, and the Flex Consumption deployment package.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Queue triggers (read, process, delete messages; write the poison queue) and the
  // revocation sweep's fan-out queue. Includes the rights of Storage Queue Data Reader
  // and Storage Queue Data Message Processor, which a queue trigger needs.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // The identity map (IDENTITY_TABLE_NAME) and revocation ledger (REVOCATION_TABLE_NAME).
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in items(roles): {
  name: guid(storage.id, principalId, role.value)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
    principalId: principalId
    principalType: 'ServicePrincipal' // avoids "principal not found" while Entra replicates a new identity
  }
}]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
