"""One emulated ACS resource: its identities, the tokens it issues, its limits and faults, and what it saw."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt

from emulator.errors import identity_not_found, identity_not_owned
from emulator.faults import Faults
from emulator.identity_ids import belongs_to_another_resource, new_identity_id
from emulator.introspection import CallLog, PeakWindows, TokenLedger
from emulator.limits import RateLimits
from emulator.state import Identity, MemoryState
from emulator.tokens import TokenSigner, format_expires_on


@dataclass
class Emulator:
    access_key: str
    signer: TokenSigner
    state: MemoryState
    limits: RateLimits
    faults: Faults
    identity_header: str
    resource_name: str = "acs-emulator"
    rng: random.Random = field(default_factory=random.Random)
    operations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    calls: CallLog = field(default_factory=CallLog)
    tokens: TokenLedger = field(default_factory=TokenLedger)
    peaks: PeakWindows = field(default_factory=PeakWindows)

    @property
    def resource_id(self) -> str:
        return self.signer.resource_id

    def new_identity(self) -> Identity:
        return self.state.add(new_identity_id(self.resource_id))

    def owned_identity(self, identity_id: str, *, allow_deleted: bool = False) -> Identity:
        """This resource's identity, else 401 ``IdentityNotOwned`` (another resource's id) or 404 (unknown/deleted)."""
        if belongs_to_another_resource(identity_id, self.resource_id):
            raise identity_not_owned()
        identity = self.state.get(identity_id)
        if identity is None or (identity.deleted and not allow_deleted):
            raise identity_not_found(identity_id)
        return identity

    def issue(self, identity: Identity, scopes: list[str], minutes: float) -> dict[str, str]:
        token, expires = self.signer.mint(identity.id, scopes, minutes, identity.generation)
        self.tokens.issued(identity.id, time.time(), expires)
        return {"token": token, "expiresOn": format_expires_on(expires)}

    def revoke(self, identity: Identity) -> None:
        self.state.revoke(identity)
        self.tokens.invalidated(identity.id)

    def delete(self, identity: Identity) -> None:
        self.state.delete(identity)
        self.tokens.invalidated(identity.id)

    def record(self, operation: str, identity_id: str | None, status: int) -> None:
        """Counters, the per-identity call log and the success peaks, for every API answer."""
        self.operations[operation] += 1
        self.statuses[f"{operation}:{status}"] += 1
        if identity_id:
            self.calls.record(identity_id, operation, status)
        if 200 <= status < 300:
            self.peaks.succeeded(operation)

    def reset_observations(self) -> None:
        self.operations.clear()
        self.statuses.clear()
        self.calls.clear()
        self.peaks.clear()

    def describe_identity(self, identity_id: str, before: float | None = None) -> dict[str, Any]:
        identity = self.state.get(identity_id)
        answer: dict[str, Any] = {
            "id": identity_id,
            "exists": identity is not None,
            "deleted": bool(identity and identity.deleted),
            "ownedByThisResource": not belongs_to_another_resource(identity_id, self.resource_id),
            "calls": self.calls.describe(identity_id),
        }
        answer["totalCalls"] = sum(calls["count"] for calls in answer["calls"].values())
        answer.update(self.tokens.describe(identity_id, before))
        if identity is None or identity.deleted:
            answer["liveTokens"] = 0
            if before is not None:
                answer["liveTokensIssuedBefore"] = 0
        return answer

    def validate(self, token: str) -> dict[str, Any]:
        """What a relying service would conclude about an access token the emulator issued."""
        verdict: dict[str, Any] = {"valid": False, "reason": None, "communicationUserId": None, "scopes": [], "expiresOn": None}
        try:
            claims = self.signer.verify(token)
        except jwt.InvalidSignatureError:  # a DecodeError subclass: catch it first
            verdict["reason"] = "bad_signature"
            return verdict
        except jwt.DecodeError:
            verdict["reason"] = "malformed"
            return verdict
        except jwt.PyJWTError:  # e.g. another algorithm
            verdict["reason"] = "bad_signature"
            return verdict
        if not isinstance(claims.get("skypeid"), str) or not isinstance(claims.get("exp"), int | float):
            verdict["reason"] = "malformed"
            return verdict
        identity_id = "8:" + claims["skypeid"]
        verdict.update(
            communicationUserId=identity_id,
            scopes=[s for s in str(claims.get("acsScope", "")).split(",") if s],
            expiresOn=format_expires_on(claims["exp"]),
        )
        identity = self.state.get(identity_id)
        if claims["exp"] <= time.time():
            verdict["reason"] = "expired"
        elif identity is None:
            verdict["reason"] = "unknown_identity"  # e.g. after POST /_emulator/reset?state=true
        elif identity.deleted:
            verdict["reason"] = "identity_deleted"
        elif claims.get("gen") != identity.generation:
            verdict["reason"] = "revoked"
        else:
            verdict["valid"] = True
        return verdict
