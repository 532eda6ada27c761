"""A local managed-identity endpoint: the App Service protocol azure-identity's ManagedIdentityCredential speaks.

With ``IDENTITY_ENDPOINT=<emulator>/_emulator/msi/token`` and ``IDENTITY_HEADER=<--identity-header>``, the
credential sends ``GET ?api-version=2019-08-01&resource=<scope without /.default>[&client_id=…]`` with
header ``X-IDENTITY-HEADER`` and expects ``{"access_token", "expires_on", "resource", "token_type"}``.
"""

from __future__ import annotations

import hmac

from aiohttp import web

ACS_AUDIENCE = "https://communication.azure.com"


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=status)


async def msi_token(request: web.Request) -> web.Response:
    emulator = request.app["emulator"]
    if not hmac.compare_digest(request.headers.get("X-IDENTITY-HEADER", "").encode(), emulator.identity_header.encode()):
        return _error(401, "invalid_identity_header", "X-IDENTITY-HEADER is missing or wrong.")
    if request.query.get("api-version") != "2019-08-01":
        return _error(400, "invalid_request", "api-version must be 2019-08-01.")
    resource = request.query.get("resource", "")
    if resource.removesuffix("/.default").rstrip("/") != ACS_AUDIENCE:
        return _error(400, "invalid_resource", f"only {ACS_AUDIENCE} is emulated, not {resource!r}.")
    client_id = request.query.get("client_id") or request.query.get("object_id") or request.query.get("mi_res_id")
    token, expires_on = emulator.signer.mint_bearer(ACS_AUDIENCE, client_id)
    return web.json_response({"access_token": token, "expires_on": str(expires_on), "resource": resource, "token_type": "Bearer"})
