"""Where the audit log is stored: a local SQLite file (default) or a lab's PostgreSQL server.

A seam for anything the station keeps in the same database as its log (users and roles, for
instance)::

    from station.audit.backend import open_backend

    backend = open_backend(location)  # a Path (SQLite) or "postgresql://..." ; opens lazily
    with backend.transaction(lock="users") as tx:  # one transaction; commits on exit
        rows = tx.execute("SELECT id, name FROM users WHERE id = ?", (user_id,))
        tx.execute("INSERT INTO users (id, name) VALUES (?, ?)", (2, "jdoe"))

* SQL is written once, with ``?`` placeholders, in the common subset of SQLite and PostgreSQL;
  ``tx.kind`` (``"sqlite"`` / ``"postgresql"``) tells where it is not. On PostgreSQL the
  station's tables live in the schema ``station`` (on the search path), so names are the same.
* ``lock=NAME`` makes the transaction exclusive for that name: SQLite takes its database write
  lock (``BEGIN IMMEDIATE``), PostgreSQL a transaction-level advisory lock
  (``pg_advisory_xact_lock``) held until commit. Use it around read-then-write.
* Failures come out as ``AuditWriteError`` (in a transaction that wrote or locked) or
  ``AuditError`` with a message for the operator; ``AuditUnavailableError`` when the server
  cannot be reached. ``ValueError`` raised inside the block rolls back and passes through.
* Tables on PostgreSQL are created by ``station audit init-server`` (run with the owner role;
  the stations' role may only SELECT and INSERT). A module with its own tables there lists a
  ``SchemaPart`` in ``SERVER_SCHEMA_PARTS`` (by dotted name) so that init-server creates them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from station.audit import db
from station.audit.entry import AuditError, AuditUnavailableError, AuditWriteError
from station.audit.pg import PostgresBackend
from station.audit.sql import SERVER_SCHEMA_PARTS, Backend, SchemaPart, Transaction, to_pyformat

def is_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def configured_location(audit_url: str | None = None) -> Path | str:
    """The station's log: ``STATION_AUDIT_URL``, else ``audit_url`` (by default the settings'),
    else the local file."""
    import os

    url = os.environ.get("STATION_AUDIT_URL", "").strip()
    if not url:
        if audit_url is None:
            from station.config import load_settings

            audit_url = getattr(load_settings(), "audit_url", "")
        url = (audit_url or "").strip()
    if url:
        if not is_url(url):
            raise AuditError(f"audit_url {url!r} is not a postgresql:// URL (leave it empty for the local log)")
        return url
    from station import paths

    return paths.audit_db_path()


def open_backend(location: Path | str, *, readonly: bool = False, busy_timeout_s: float = 5.0) -> Backend:
    if is_url(location):
        return PostgresBackend(str(location), readonly=readonly, timeout_s=busy_timeout_s)
    return SQLiteBackend(Path(location), readonly=readonly, busy_timeout_s=busy_timeout_s)


class _SQLiteTransaction(Transaction):
    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        yield from self._conn.execute(sql, tuple(params))


class SQLiteBackend(Backend):
    """The local file (see ``station.audit.db``): WAL, ``synchronous=FULL``, one writer at a time."""

    kind = "sqlite"

    def __init__(self, path: Path, *, readonly: bool = False, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        return str(self.path.resolve())

    def connection(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None:
                if self.readonly:
                    self._conn = db.connect_reader(self.path)
                else:
                    self._conn = db.connect_writer(self.path, self.busy_timeout_s)
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Transaction]:
        with self._lock:
            conn = self.connection()
            writing = lock is not None
            try:
                conn.execute("BEGIN IMMEDIATE" if writing else "BEGIN")
                yield _SQLiteTransaction(conn)
                conn.execute("COMMIT")
            except ValueError:
                _rollback(conn)
                raise
            except sqlite3.Error as exc:
                _rollback(conn)
                self.close()  # a fresh connection next time: after an I/O error this one may be unusable
                if writing:
                    raise db.write_error(self.path, exc, "write the audit record", self.busy_timeout_s) from exc
                raise AuditError(f"cannot read the audit log {self.path}: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise

    def schema_problems(self) -> list[str]:
        with self._lock:
            return db.schema_problems(self.connection())

    def schema_version(self) -> int:
        with self._lock:
            return db.schema_version(self.connection())

    def select_columns(self) -> str:
        if self.schema_version() >= 2:
            return ", ".join(db.COLUMNS)
        legacy = {"station_id": "json_extract(payload, '$.station_id')", "signature": "NULL"}
        return ", ".join(legacy.get(c, c) for c in db.COLUMNS)

    def sequence_max(self, tx: Transaction) -> int | None:
        rows = tx.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'")
        return rows[0][0] if rows else None


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite has already rolled back (e.g. after SQLITE_FULL); nothing was written


__all__ = [
    "AuditError",
    "AuditUnavailableError",
    "AuditWriteError",
    "Backend",
    "PostgresBackend",
    "SchemaPart",
    "SERVER_SCHEMA_PARTS",
    "SQLiteBackend",
    "Transaction",
    "configured_location",
    "is_url",
    "open_backend",
    "to_pyformat",
]
