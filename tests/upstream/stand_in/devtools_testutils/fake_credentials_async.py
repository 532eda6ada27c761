"""The async credential for playback runs; imported by Microsoft's async tests, never used live."""

from __future__ import annotations

import time
from typing import Any, Self

from azure.core.credentials import AccessToken


class AsyncFakeCredential:
    async def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
        return AccessToken("fake-token-for-playback", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None
