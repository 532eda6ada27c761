"""AUTH_MODE=dev: the user is whatever X-Dev-User says. Local development only."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from shared.adapters.auth.headers import header
from shared.adapters.lifecycle import AsyncClosable
from shared.domain.caller import Caller, require_roles
from shared.domain.errors import UnauthenticatedError

logger = logging.getLogger("shared.auth")
MAX_USER_CHARS = 128


class DevAuthenticator(AsyncClosable):
    def __init__(self, required_roles: frozenset[str]) -> None:
        self._required_roles = required_roles
        logger.warning(
            "AUTH_MODE=dev: ANY caller can claim ANY user with the X-Dev-User header. "
            "Never expose this to a network; use jwt or easyauth in Azure."
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        user = (header(headers, "X-Dev-User") or "").strip()
        if not user or len(user) > MAX_USER_CHARS or not user.isprintable():
            raise UnauthenticatedError(f"Send X-Dev-User: <user name> (1-{MAX_USER_CHARS} printable characters).")
        roles = frozenset(r.strip() for r in (header(headers, "X-Dev-Roles") or "").split(",") if r.strip())
        return require_roles(Caller("dev", user, roles), self._required_roles)

    async def close(self) -> None:
        return None
