"""A credential for playback runs; imported by Microsoft's tests, never used live (they use DefaultAzureCredential)."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken


class FakeTokenCredential:
    def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
        return AccessToken("fake-token-for-playback", int(time.time()) + 3600)
