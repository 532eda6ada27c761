"""Caller authentication: who is calling, from verified credentials only (never the body).

``AUTH_MODE`` picks one authenticator per worker: ``jwt`` (OpenID Connect bearer
tokens), ``easyauth`` (App Service Authentication headers) or ``dev`` (local only).
"""

from __future__ import annotations

from shared import settings as app_settings
from shared.auth.caller import Authenticator, Caller
from shared.settings import AuthSettings

__all__ = ["Authenticator", "Caller", "close_authenticator", "create_authenticator", "get_authenticator"]


def create_authenticator(settings: AuthSettings) -> Authenticator:
    if settings.mode == "jwt":
        from shared.auth.jwt_bearer import JwtBearerAuthenticator

        return JwtBearerAuthenticator(settings)
    if settings.mode == "easyauth":
        from shared.auth.easyauth import EasyAuthAuthenticator

        return EasyAuthAuthenticator(settings.required_roles)
    from shared.auth.dev import DevAuthenticator

    return DevAuthenticator(settings.required_roles)


_authenticator: Authenticator | None = None


def get_authenticator() -> Authenticator:
    """The worker's one authenticator (its JWKS cache and HTTP session are shared)."""
    global _authenticator
    if _authenticator is None:
        _authenticator = create_authenticator(app_settings.auth_settings())
    return _authenticator


async def close_authenticator() -> None:
    """Release the worker's authenticator (its JWKS HTTP session)."""
    global _authenticator
    authenticator, _authenticator = _authenticator, None
    if authenticator is not None:
        await authenticator.close()
