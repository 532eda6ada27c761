"""Caller authentication: who is calling, from verified credentials only (never the body).

``AUTH_MODE`` picks one authenticator per worker (built by the composition root):
``jwt`` (OpenID Connect bearer tokens), ``easyauth`` (App Service Authentication
headers) or ``dev`` (local only). Each implements
:class:`shared.domain.ports.Authenticator`.
"""

from __future__ import annotations

from shared.domain.ports import Authenticator
from shared.settings import AuthSettings


def create_authenticator(settings: AuthSettings) -> Authenticator:
    """The authenticator for ``settings.mode``; only its own module is imported."""
    if settings.mode == "jwt":
        from shared.adapters.auth.jwt_bearer import JwtBearerAuthenticator

        return JwtBearerAuthenticator(settings)
    if settings.mode == "easyauth":
        from shared.adapters.auth.easyauth import EasyAuthAuthenticator

        return EasyAuthAuthenticator(settings.required_roles)
    from shared.adapters.auth.dev import DevAuthenticator

    return DevAuthenticator(settings.required_roles)
