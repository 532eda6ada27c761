"""Identities and their revocation generations: in memory, or in a SQLite file that survives restarts."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Identity:
    id: str
    created: float
    generation: int = 0  # bumped by every revocation
    deleted: bool = False


class MemoryState:
    def __init__(self) -> None:
        self._identities: dict[str, Identity] = {}
        self._meta: dict[str, bytes] = {}

    def add(self, identity_id: str) -> Identity:
        identity = Identity(identity_id, time.time())
        self._identities[identity_id] = identity
        return identity

    def get(self, identity_id: str) -> Identity | None:
        return self._identities.get(identity_id)

    def revoke(self, identity: Identity) -> None:
        identity.generation += 1

    def delete(self, identity: Identity) -> None:
        identity.deleted = True
        identity.generation += 1

    def meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: bytes) -> None:
        self._meta[key] = value

    def clear(self) -> None:
        self._identities.clear()

    def close(self) -> None:
        pass

    def count(self) -> dict[str, int]:
        live = sum(1 for i in self._identities.values() if not i.deleted)
        return {"live": live, "deleted": len(self._identities) - live}


class SqliteState(MemoryState):
    """Write-through to SQLite; reads come from memory, loaded once at start."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS identities (id TEXT PRIMARY KEY, created REAL, generation INTEGER, deleted INTEGER);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
            """
        )
        for row in self._db.execute("SELECT id, created, generation, deleted FROM identities"):
            self._identities[row[0]] = Identity(row[0], row[1], row[2], bool(row[3]))
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            self._meta[key] = value

    def _save(self, identity: Identity) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO identities VALUES (?, ?, ?, ?)",
                (identity.id, identity.created, identity.generation, int(identity.deleted)),
            )

    def add(self, identity_id: str) -> Identity:
        identity = super().add(identity_id)
        self._save(identity)
        return identity

    def revoke(self, identity: Identity) -> None:
        super().revoke(identity)
        self._save(identity)

    def delete(self, identity: Identity) -> None:
        super().delete(identity)
        self._save(identity)

    def set_meta(self, key: str, value: bytes) -> None:
        super().set_meta(key, value)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._db.execute("DELETE FROM identities")

    def close(self) -> None:
        with self._lock:
            self._db.close()
