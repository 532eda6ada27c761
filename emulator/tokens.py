"""ACS-shaped access tokens: RS256 JWTs signed with a key the emulator owns.

The official CommunicationTokenCredential (chat and calling SDKs) decodes the
payload with the standard, non-URL-safe base64 alphabet, so a payload whose
base64url text holds ``-`` or ``_`` breaks it. Minting re-signs with a new
nonce until neither the header nor the payload has one.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: The 'scp' claim real ACS tokens carry.
SCP = 1792
MAX_ATTEMPTS = 64


def new_signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_to_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def key_from_pem(pem: bytes) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(pem, password=None)  # type: ignore[return-value]


def format_expires_on(epoch: float) -> str:
    """ACS's format: ``2023-10-20T12:48:08.0455796+00:00``, ``…14:01:54.447802+00:00``, ``…08+00:00``.

    Up to seven fractional digits (100 ns ticks) with trailing zeros trimmed, and no dot for a whole second
    (PY_RECORDINGS in references.py show seven and six digits). Truncated, never rounded, so the whole seconds
    always equal the token's integer ``exp`` claim; the float's shortest decimal form avoids binary noise.
    """
    exact = Decimal(repr(epoch))
    seconds = int(exact)
    fraction = f"{int((exact - seconds) * 10_000_000):07d}".rstrip("0")
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction}+00:00" if fraction else f"{stamp}+00:00"


def standard_base64_safe(token: str) -> bool:
    header, payload, _ = token.split(".")
    return not any(c in part for part in (header, payload) for c in "-_")


@dataclass(frozen=True)
class TokenClaims:
    communication_user_id: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    generation: int


class TokenSigner:
    def __init__(self, key: rsa.RSAPrivateKey, resource_id: str, kid: str = "acs-emulator") -> None:
        self._key = key
        self._public = key.public_key()
        self.resource_id = resource_id
        self.kid = kid

    def mint(
        self, communication_user_id: str, scopes: list[str], minutes: float, generation: int, now: float | None = None
    ) -> tuple[str, float]:
        issued = time.time() if now is None else now
        expires = issued + minutes * 60
        claims: dict = {
            "nonce": "",  # emulator-only, first: its varying length shifts the base64 alignment of the rest
            "skypeid": communication_user_id.removeprefix("8:"),
            "scp": SCP,
            "csi": str(int(issued)),
            "exp": int(expires),
            "acsScope": ",".join(scopes),
            "resourceId": self.resource_id,
            "resourceLocation": "unitedstates",
            "iat": int(issued),
            # emulator-only: the identity's revocation generation when issued; a revoke bumps it,
            # so every earlier token is invalid even within the same second
            "gen": generation,
        }
        for attempt in range(MAX_ATTEMPTS):
            claims["nonce"] = secrets.token_hex(4)[: 6 + attempt % 3]
            token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "x5t": "emulator"})
            if standard_base64_safe(token):
                return token, expires
        raise RuntimeError("could not mint a standard-base64-safe token")  # 64 misses: practically impossible

    def verify(self, token: str) -> dict:
        """Claims if the signature is ours (expiry is checked by the caller, to report it)."""
        return jwt.decode(token, self._public, algorithms=["RS256"], options={"verify_exp": False})

    def mint_bearer(self, audience: str, client_id: str | None, minutes: int = 60) -> tuple[str, int]:
        """A managed-identity access token for ACS, as Entra ID would issue (local issuer)."""
        now = int(time.time())
        claims = {"aud": audience, "iss": "https://acs-emulator.local/msi", "iat": now, "nbf": now, "exp": now + minutes * 60}
        if client_id:
            claims["appid"] = client_id
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": "msi"}), now + minutes * 60

    def verify_bearer(self, token: str) -> dict:
        return jwt.decode(
            token,
            self._public,
            algorithms=["RS256"],
            audience=["https://communication.azure.com", "https://communication.azure.com/"],
            options={"require": ["exp", "aud"]},
        )


def decode_unverified(token: str) -> dict:
    """The payload of any JWT-shaped string, without checking its signature (Teams tokens)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
