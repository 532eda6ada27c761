"""The issuer's signing keys as one worker holds them: when to fetch them, and what to serve while the issuer fails.

Forged tokens can carry any ``kid``, and the issuer can be slow or down; neither may turn into a
fetch storm against the issuer or into a queue that signed-in users wait in. The rules, after
Microsoft's key caching guidance for token validators ("Signing key rollover in the Microsoft
identity platform", MicrosoftDocs/entra-docs docs/identity-platform/signing-key-rollover.md:
refresh hourly, keys live 24 h in the cache so that problems fetching them do not matter, one
fetch at a time, fetch on an unknown kid but not too often):

* **One fetch at a time, at most one per interval, whatever its outcome.** A fetch is a
  background task every caller that needs it shares; a failed fetch counts like a good one,
  so 100 forged kids while the issuer fails cost one fetch, not 100.
* **Known keys never wait.** A token whose ``kid`` is in the keys held is checked against them
  at once, also while a fetch is running; keys older than an hour are refreshed in the
  background meanwhile.
* **A caller that needs a fetch waits for it briefly** (``wait``, 2 s), never longer: a slow
  issuer cannot hold requests for the length of its timeouts.
* **The last good keys are served for 24 hours** after the last successful fetch while fetches
  fail (the cache lifetime of Microsoft's guidance above; Microsoft.IdentityModel's
  ConfigurationManager goes further and keeps its last configuration with no bound at all): an
  outage of the issuer of less than a day does not sign anyone out, and a key the issuer withdrew
  stops being trusted at the latest a day later even if we never reach the issuer again. A
  successful fetch replaces the whole set at once, so a withdrawn key goes as soon as the issuer
  can be read.

What callers get: the key; ``None`` for a ``kid`` the held keys do not have (the token is
refused, 401) once the fetch it could wait for is over; :class:`UnavailableError` (503, with
``Retry-After`` until the next fetch may start) when no trustworthy keys are held at all, or
while the fetch an unknown ``kid`` waits for is still running after ``wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import jwt

from shared.domain.errors import UnavailableError

logger = logging.getLogger("shared.auth")

#: Fetches the issuer's current signing keys by kid; raises UnavailableError when it cannot.
KeyFetch = Callable[[], Awaitable[Mapping[str, jwt.PyJWK]]]
#: Seconds on a monotonic scale (time.monotonic; a fake one in tests).
Clock = Callable[[], float]


@dataclass(frozen=True)
class KeyCachePolicy:
    """The cache's timings, in seconds (defaults: see the module's docstring for why)."""

    #: fetch attempts are at least this far apart, whatever their outcome (AUTH_JWKS_MIN_INTERVAL_SECONDS)
    min_interval: float = 30.0
    #: keys older than this are refreshed in the background while still being served
    refresh_after: float = 3600.0
    #: while fetches fail, the last good keys are trusted this long after they were fetched
    serve_stale_for: float = 24 * 3600.0
    #: the longest a caller waits for a fetch it needs (unknown kid, no keys held)
    wait: float = 2.0


class SigningKeyCache:
    """The signing keys of one issuer, fetched by ``fetch`` under :class:`KeyCachePolicy`'s rules."""

    def __init__(self, fetch: KeyFetch, policy: KeyCachePolicy | None = None, clock: Clock = time.monotonic) -> None:
        self._fetch = fetch
        self._policy = policy or KeyCachePolicy()
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # when the keys held were fetched (last success)
        self._attempted_at: float | None = None  # when the last fetch started, whatever became of it
        self._running: asyncio.Task[None] | None = None

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for ``kid`` (or the only key when the token names none); None if it is not one of ours."""
        now = self._clock()
        if self._trusted(now):
            key = self._lookup(kid)
            if key is not None:
                if self._fetched_at is not None and now - self._fetched_at >= self._policy.refresh_after:
                    self._start_fetch(now)  # in the background: this caller does not wait for it
                return key
        fetch = self._start_fetch(now)
        if fetch is not None:
            await asyncio.wait({fetch}, timeout=self._policy.wait)  # never cancels the shared fetch
            now = self._clock()
            if self._trusted(now):
                key = self._lookup(kid)
                if key is not None:
                    return key
            if not fetch.done():
                raise UnavailableError(
                    "The sign-in provider's keys are being fetched; retry shortly.", retry_after=math.ceil(self._policy.wait)
                )
        if self._trusted(now):
            return None
        raise UnavailableError(
            "The sign-in provider's keys could not be fetched; retry later.", retry_after=self._retry_after(now)
        )

    def _trusted(self, now: float) -> bool:
        return bool(self._keys) and self._fetched_at is not None and now - self._fetched_at <= self._policy.serve_stale_for

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _start_fetch(self, now: float) -> asyncio.Task[None] | None:
        """The running fetch, or a new one if the interval allows it, else None."""
        if self._running is not None and not self._running.done():
            return self._running
        if self._attempted_at is not None and now - self._attempted_at < self._policy.min_interval:
            return None
        self._attempted_at = now
        self._running = asyncio.get_running_loop().create_task(self._fetch_once(), name="signing-key-fetch")
        return self._running

    async def _fetch_once(self) -> None:
        """One fetch; its outcome is recorded, never raised (nobody may be awaiting it)."""
        try:
            keys = dict(await self._fetch())
        except UnavailableError as error:
            logger.warning("signing keys not refreshed: %s", error.message)
            return
        except Exception as error:  # noqa: BLE001 - a background task must record, not raise; the keys held stay
            logger.warning("signing keys not refreshed: %s", type(error).__name__)
            return
        if not keys:
            logger.warning("signing keys not refreshed: the issuer published no usable signing key")
            return
        self._keys = keys
        self._fetched_at = self._clock()

    def _retry_after(self, now: float) -> int:
        """Seconds until a fetch may start again (at least 1)."""
        if self._attempted_at is None:
            return 1
        return max(1, math.ceil(self._attempted_at + self._policy.min_interval - now))

    async def close(self) -> None:
        """Stop a fetch still running (the worker is shutting down)."""
        if self._running is not None and not self._running.done():
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
        self._running = None
