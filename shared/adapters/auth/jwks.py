"""The issuer's signing keys: discovered, fetched asynchronously, cached, refreshed on unknown kid."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlparse

import aiohttp
import jwt

from shared.domain.errors import UnavailableError
from shared.settings import is_loopback_host

logger = logging.getLogger("shared.auth")

#: A forged token with a random kid may force at most one refetch per this many seconds.
MIN_REFRESH_SECONDS = 30.0
#: Keys are re-read at least this often, so a rotation is picked up even without a new kid.
MAX_AGE_SECONDS = 3600.0
TIMEOUT = aiohttp.ClientTimeout(total=5)


def check_url(url: str, what: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback_host(parsed.hostname)):
        return url
    raise UnavailableError(f"The {what} must use https.", retry_after=60)


class JwksCache:
    def __init__(self, issuer: str, jwks_url: str | None) -> None:
        self._issuer = issuer.rstrip("/")
        self._jwks_url = jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for ``kid`` (or the only key when the token has no kid); None if unknown."""
        stale = time.monotonic() - self._fetched_at > MAX_AGE_SECONDS
        if stale or (self._lookup(kid) is None and time.monotonic() - self._fetched_at > MIN_REFRESH_SECONDS):
            async with self._lock:
                # Re-check under the lock: a concurrent request may have refreshed already.
                if time.monotonic() - self._fetched_at > MIN_REFRESH_SECONDS or not self._keys:
                    await self._refresh()
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._session.get(url, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    raise UnavailableError("The sign-in provider's keys could not be fetched; retry later.")
                document = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            logger.warning("fetching %s failed", urlparse(url).netloc)
            raise UnavailableError("The sign-in provider could not be reached; retry later.") from None
        if not isinstance(document, dict):
            raise UnavailableError("The sign-in provider answered something other than a JSON object.")
        return document

    async def _refresh(self) -> None:
        url = self._jwks_url
        if url is None:
            discovery = await self._get_json(check_url(f"{self._issuer}/.well-known/openid-configuration", "issuer"))
            url = discovery.get("jwks_uri")
            if not isinstance(url, str):
                raise UnavailableError("The sign-in provider's discovery document has no jwks_uri.")
            self._jwks_url = url
        document = await self._get_json(check_url(url, "JWKS URL"))
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type we do not support: skip it
            keys[entry.get("kid") or f"_nokid{len(keys)}"] = key
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
