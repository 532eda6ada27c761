"""Reading an issuer's signing keys over HTTP: OpenID discovery, then its JWKS.

One call of :class:`JwksFetcher` is one attempt; when and how often to make it is
:mod:`shared.adapters.auth.key_cache`'s decision.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import aiohttp
import jwt

from shared.domain.errors import UnavailableError
from shared.settings import is_loopback_host

logger = logging.getLogger("shared.auth")

#: Per HTTP request to the issuer; an attempt is at most two of them (discovery, JWKS).
TIMEOUT = aiohttp.ClientTimeout(total=5)


def check_url(url: str, what: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback_host(parsed.hostname)):
        return url
    raise UnavailableError(f"The {what} must use https.", retry_after=60)


class JwksFetcher:
    """The issuer's current signing keys by kid, discovered from ``issuer`` unless ``jwks_url`` is given."""

    def __init__(self, issuer: str, jwks_url: str | None) -> None:
        self._issuer = issuer.rstrip("/")
        self._configured_jwks_url = jwks_url
        self._discovered_jwks_url: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self) -> dict[str, jwt.PyJWK]:
        url = self._configured_jwks_url or self._discovered_jwks_url or await self._discover()
        try:
            document = await self._get_json(check_url(url, "JWKS URL"))
        except UnavailableError:
            self._discovered_jwks_url = None  # the issuer may have moved its keys: discover again next time
            raise
        keys: dict[str, jwt.PyJWK] = {}
        entries = document.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type we do not support: skip it
            keys[str(entry.get("kid") or f"_nokid{len(keys)}")] = key
        return keys

    async def _discover(self) -> str:
        discovery = await self._get_json(check_url(f"{self._issuer}/.well-known/openid-configuration", "issuer"))
        url = discovery.get("jwks_uri")
        if not isinstance(url, str):
            raise UnavailableError("The sign-in provider's discovery document has no jwks_uri.")
        self._discovered_jwks_url = url
        return url

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._session.get(url, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    logger.warning("fetching %s answered %d", urlparse(url).netloc, response.status)
                    raise UnavailableError("The sign-in provider's keys could not be fetched; retry later.")
                document = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            logger.warning("fetching %s failed", urlparse(url).netloc)
            raise UnavailableError("The sign-in provider could not be reached; retry later.") from None
        if not isinstance(document, dict):
            raise UnavailableError("The sign-in provider answered something other than a JSON object.")
        return document

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
