"""The one place that chooses an Entra ID credential, for ACS and for storage alike.

In Azure (the platform sets ``WEBSITE_INSTANCE_ID``; managed identity endpoints set
``IDENTITY_ENDPOINT`` or, on older hosts, ``MSI_ENDPOINT``) the Function App's managed
identity is used, user-assigned when a client id is given. Elsewhere (a developer's
machine) ``DefaultAzureCredential`` finds the Azure CLI, VS Code or environment login.
"""

from __future__ import annotations

from collections.abc import Mapping

from azure.core.credentials_async import AsyncTokenCredential

from shared.settings import running_in_azure

#: Environment variables that tell a managed identity endpoint is there.
MANAGED_IDENTITY_MARKERS = ("IDENTITY_ENDPOINT", "MSI_ENDPOINT")


def has_managed_identity(env: Mapping[str, str]) -> bool:
    """True in Azure, or wherever a managed identity endpoint is advertised."""
    return running_in_azure(env) or any(env.get(name) for name in MANAGED_IDENTITY_MARKERS)


def entra_credential(client_id: str | None, env: Mapping[str, str]) -> AsyncTokenCredential:
    """Managed identity where there is one (user-assigned with ``client_id``), else DefaultAzureCredential."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential  # only Entra ID modes pay for it

    if has_managed_identity(env):
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=client_id)
