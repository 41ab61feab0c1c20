"""Where the argon2 hashes live: a table beside the audit log's entries, in the same database.

Rows are only ever inserted (a new password is a new row), so the station's database role
needs INSERT and SELECT here as on the log. Each row is keyed by the sha256 of its hash, and
the audit log names the key that is current for each user: a row swapped in by someone with
the database is simply not the one the log names, and is refused.

The SQL is plain (``CREATE TABLE IF NOT EXISTS``, ``INSERT``, ``SELECT``) so that the same
statements serve SQLite and PostgreSQL; ``SqliteCredentials`` runs them on the audit file,
``ServerCredentials`` on the lab's server (``station.audit.backend``), where
``station audit init-server`` creates the table (``SERVER_SCHEMA``).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from station.audit.entry import AuditError, AuditWriteError
from station.audit.sql import SchemaPart
from station.users.passwords import credential_digest

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS user_credentials (
    credential_sha256 TEXT PRIMARY KEY CHECK (length(credential_sha256) = 64),
    user_id           TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    created_utc       TEXT NOT NULL
)
"""
SERVER_SCHEMA = SchemaPart(
    name="users",
    postgresql=(CREATE_TABLE.replace("user_credentials", "station.user_credentials", 1),),
    station_grants=("GRANT SELECT, INSERT ON station.user_credentials TO {role}",),
)
INSERT = "INSERT INTO user_credentials (credential_sha256, user_id, password_hash, created_utc) VALUES (?, ?, ?, ?)"
SELECT = "SELECT password_hash FROM user_credentials WHERE credential_sha256 = ? AND user_id = ?"


class CredentialStore(Protocol):
    def add(self, user_id: str, password_hash: str) -> str:
        """Store ``password_hash`` for ``user_id``; returns its key (``credential_digest``)."""

    def get(self, user_id: str, credential_sha256: str) -> str | None:
        """The hash stored under that key for that user, or None."""


class SqliteCredentials:
    """The credentials table in the SQLite audit file (created there after the log's schema)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def add(self, user_id: str, password_hash: str) -> str:
        key = credential_digest(password_hash)
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        try:
            conn = self._connect()
            try:
                conn.execute(CREATE_TABLE)
                conn.execute(INSERT, (key, user_id, password_hash, now))
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise AuditWriteError(f"could not store the password hash in {self.path}: {exc}") from exc
        return key

    def get(self, user_id: str, credential_sha256: str) -> str | None:
        try:
            conn = self._connect()
            try:
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'user_credentials'"
                ).fetchone()
                row = conn.execute(SELECT, (credential_sha256, user_id)).fetchone() if exists else None
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the credentials in {self.path}: {exc}") from exc
        return row[0] if row else None


class ServerCredentials:
    """The credentials table on the lab's PostgreSQL server, beside the log's entries."""

    def __init__(self, url: str) -> None:
        self.url = url

    def add(self, user_id: str, password_hash: str) -> str:
        from station.audit.backend import open_backend

        key = credential_digest(password_hash)
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        backend = open_backend(self.url)
        try:
            with backend.transaction(lock="station-user-credentials") as tx:
                tx.execute(INSERT, (key, user_id, password_hash, now))
        finally:
            backend.close()
        return key

    def get(self, user_id: str, credential_sha256: str) -> str | None:
        from station.audit.backend import open_backend

        backend = open_backend(self.url, readonly=True)
        try:
            with backend.transaction() as tx:
                rows = tx.execute(SELECT, (credential_sha256, user_id))
        finally:
            backend.close()
        return rows[0][0] if rows else None


def credentials_for(log) -> CredentialStore:
    """The credential table of the database that holds ``log``."""
    log.open()  # the log's schema first: the credentials table joins an audit database, never founds one
    if log.is_server:
        return ServerCredentials(str(log.location))
    return SqliteCredentials(log.path)
