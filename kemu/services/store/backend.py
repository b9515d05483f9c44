"""SQLite persistence: schema, connections and the persisted metadata.

Why SQLite in WAL mode: one file, atomic multi-row transactions (a Txn's rows
land together or not at all), and readers on their own connections see the
last committed state without blocking the single writer. With
``synchronous=FULL`` every commit is fsynced, so a write acknowledged after its
commit survives ``kill -9`` and power loss, as etcd's WAL does.

Tables:

``kv``       every version of every key (history); tombstones have deleted=1.
             Primary key (rev, sub) so history scans for watchers are in order.
``current``  the latest live version of each key, for fast latest reads.
``lease``    granted leases and their TTL (expiry restarts after a restart).
``meta``     the current and compacted revisions and the cluster identity.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kemu.services.store.errors import StorageError

DB_NAME = "kemu-store.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    rev INTEGER NOT NULL,
    sub INTEGER NOT NULL,
    key BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    value BLOB NOT NULL,
    deleted INTEGER NOT NULL,
    PRIMARY KEY (rev, sub)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_key_rev ON kv (key, rev);
CREATE TABLE IF NOT EXISTS current (
    key BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS current_lease ON current (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY,
    ttl INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Meta:
    """Persisted store identity and revisions, as loaded at startup."""

    revision: int
    compact_revision: int
    cluster_id: int
    member_id: int


def _random_id() -> int:
    """A nonzero 63-bit ID (etcd IDs are uint64; keep them positive in SQLite)."""
    return secrets.randbits(63) or 1


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def connect(data_dir: Path, *, fsync: bool, cache_mb: int = 8) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit)."""
    try:
        conn = sqlite3.connect(
            db_path(data_dir), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        conn.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")
        conn.execute("PRAGMA temp_store=MEMORY")
    except sqlite3.Error as e:
        raise StorageError(f"cannot open database in {data_dir}: {e}") from e
    return conn


def initialize(data_dir: Path, *, fsync: bool) -> Meta:
    """Create the data dir and schema if needed, and load (or create) the metadata."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create data dir {data_dir}: {e.strerror}") from e
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StorageError(f"data dir {data_dir} is not writable")
    conn = connect(data_dir, fsync=fsync)
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        values = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        defaults = {
            "rev": 1,
            "compact": 0,
            "cluster_id": _random_id(),
            "member_id": _random_id(),
        }
        for name, value in defaults.items():
            if name not in values:
                conn.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
                values[name] = value
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        raise StorageError(f"cannot initialize database in {data_dir}: {e}") from e
    finally:
        conn.close()
    return Meta(
        revision=int(values["rev"]),
        compact_revision=int(values["compact"]),
        cluster_id=int(values["cluster_id"]),
        member_id=int(values["member_id"]),
    )


def load_leases(conn: sqlite3.Connection) -> dict[int, int]:
    """All persisted leases as id -> granted TTL."""
    return {int(i): int(t) for i, t in conn.execute("SELECT id, ttl FROM lease")}


def db_sizes(conn: sqlite3.Connection, data_dir: Path) -> tuple[int, int]:
    """(bytes on disk including the WAL, bytes in use by live pages)."""
    path = db_path(data_dir)
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(f"{path}{suffix}")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return total, (pages - free) * page_size
