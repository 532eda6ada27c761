"""A local OpenID Connect issuer for tests: discovery, a JWKS, and tokens good and bad.

Runs an aiohttp server on 127.0.0.1 (free port) in a background thread, so sync and
async tests can both use it. Keys are generated per instance.

It can misbehave the ways a real issuer does: answer errors (``down``, ``fail_status``), answer
slowly (``delay``), or hold every request until released (``hold()``/``release()``, bounded by
``max_hold_seconds`` so that a test that forgets to release still ends). ``discovery_requests``
and ``jwks_requests`` count every request whatever it was answered; ``discovery_fetches`` and
``jwks_fetches`` count the ones answered with keys.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class OidcIssuer:
    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"key-1": new_key()}
        self.current_kid = "key-1"
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.jwks_requests = 0
        self.discovery_requests = 0
        self.down = False
        #: answer every request with this status (None: answer normally); ``down`` is 503
        self.fail_status: int | None = None
        #: seconds to wait before answering
        self.delay = 0.0
        #: the longest a held request waits for release()
        self.max_hold_seconds = 10.0
        self._held = False
        self.issuer = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # ------------------------------------------------------------------ server

    @property
    def requests(self) -> int:
        """Every request to discovery or the JWKS so far, whatever it was answered."""
        return self.discovery_requests + self.jwks_requests

    def hold(self) -> None:
        """From now on, requests wait (up to ``max_hold_seconds``) until :meth:`release`."""
        self._held = True

    def release(self) -> None:
        self._held = False

    async def _misbehave(self) -> web.Response | None:
        """Delay or hold as configured; an error answer when failing, else None."""
        deadline = time.monotonic() + self.max_hold_seconds
        while self._held and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down or self.fail_status is not None:
            return web.Response(status=self.fail_status or 503)
        return None

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        if (failure := await self._misbehave()) is not None:
            return failure
        self.discovery_fetches += 1
        return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/keys"})

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        if (failure := await self._misbehave()) is not None:
            return failure
        self.jwks_fetches += 1
        return web.json_response({"keys": [public_jwk(key, kid) for kid, key in self.keys.items()]})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/keys", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.issuer = f"http://127.0.0.1:{port}"

    def start(self) -> OidcIssuer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        self.release()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/keys"

    # ------------------------------------------------------------------ tokens

    def rotate(self) -> str:
        """Add a new signing key and make it current; returns its kid."""
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = new_key()
        self.current_kid = kid
        return kid

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        kid: str | None = None,
        foreign_key: bool = False,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A token from this issuer (``iss`` defaults to it); ``foreign_key`` signs with an unknown key."""
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "nbf": now, "exp": now + 600}
        body.update(claims or {})
        kid = kid or self.current_kid
        key = new_key() if foreign_key else self.keys.get(kid) or new_key()
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    """A running issuer per test module (a module that changes its keys or answers gets its own)."""
    with OidcIssuer() as running:
        yield running
