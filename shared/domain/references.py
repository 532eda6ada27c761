"""Keyed references to users: how logs (and the audit trail) name a user without naming them."""

from __future__ import annotations

import asyncio
import base64
import secrets

from shared.domain.caller import user_ref
from shared.domain.ports import SecretStore

#: the name of the generated key in the secret store
SECRET_NAME = "user-ref-key"  # noqa: S105 - the secret's name, not its value


class UserReferences:
    """``ref(user_key)``: HMAC-SHA256 under the deployment's key (see :func:`shared.domain.caller.user_ref`).

    The key is ``USER_REF_KEY`` when set; otherwise one is generated on first use and kept in the
    secret store, so references stay the same across workers, instances and restarts (the audit
    trail looks users up by them). It is loaded once per worker.
    """

    def __init__(self, store: SecretStore | None, configured: str | None = None) -> None:
        if store is None and not configured:
            raise ValueError("UserReferences needs a configured key or a secret store to keep a generated one")
        self._store = store
        self._key: bytes | None = configured.encode("utf-8") if configured else None
        self._lock = asyncio.Lock()

    async def ref(self, user_key: str, *, length: int = 16) -> str:
        return user_ref(await self._secret(), user_key, length=length)

    async def _secret(self) -> bytes:
        if self._key is None:
            async with self._lock:
                if self._key is None and self._store is not None:
                    fresh = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
                    self._key = (await self._store.get_or_create(SECRET_NAME, fresh)).encode("utf-8")
        if self._key is None:  # unreachable: the constructor requires a key or a store
            raise ValueError("no user reference key")
        return self._key
