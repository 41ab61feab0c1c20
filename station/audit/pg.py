"""The audit log on a lab's PostgreSQL server (psycopg 3): one chain for every bench PC.

The tables live in the schema ``station`` and are created by ``init_server`` (``station audit
init-server OWNER_URL``), run once with a role that owns the database. The stations connect as
a role that may only SELECT and INSERT (``station_writer`` or a login role in it): UPDATE, DELETE
and TRUNCATE are not granted, and triggers refuse them even for the owner (who can drop the
triggers: ``verify`` then fails, naming them). Appends from all stations are serialised by a
transaction-level advisory lock (``pg_advisory_xact_lock``), taken before the chain head is read,
so the chain stays one; each entry names its station (``station_id``). See docs/LAB-LOG.md.

A server that cannot be reached gives ``AuditUnavailableError`` at once (short connect and lock
timeouts, TCP keepalives): nothing is spooled locally, so a record is either on the server or
not recorded, and the station keeps release blocked until it is (see docs/LAB-LOG.md, why).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from station.audit.sql import Backend, SchemaPart, Transaction, to_pyformat
from station.audit.entry import AuditError, AuditUnavailableError, AuditWriteError

SCHEMA = "station"
_IDLE_CHECK_S = 30.0  # a connection idle this long is tried before it carries a record
STATION_ROLE = "station_writer"

_ENTRIES = """
CREATE TABLE station.entries (
    id          BIGINT PRIMARY KEY,
    time_utc    TEXT NOT NULL,
    action      TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    chip_id     TEXT,
    material    TEXT,
    verdict     TEXT,
    refers_to   BIGINT REFERENCES station.entries(id),
    payload     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash        TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
    station_id  TEXT NOT NULL,
    signature   TEXT
)"""
_FUNCTIONS = {
    "entries_append_only": """
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % is not allowed', TG_OP;
END
""",
    "entries_next_id": """
BEGIN
    IF NEW.id IS DISTINCT FROM (SELECT COALESCE(MAX(id), 0) + 1 FROM station.entries) THEN
        RAISE EXCEPTION 'audit entries are append-only: an insert must carry the next id';
    END IF;
    RETURN NEW;
END
""",
}
_TRIGGERS = {
    "entries_no_update": "BEFORE UPDATE ON station.entries FOR EACH ROW EXECUTE FUNCTION station.entries_append_only()",
    "entries_no_delete": "BEFORE DELETE ON station.entries FOR EACH ROW EXECUTE FUNCTION station.entries_append_only()",
    "entries_no_truncate": (
        "BEFORE TRUNCATE ON station.entries FOR EACH STATEMENT EXECUTE FUNCTION station.entries_append_only()"
    ),
    "entries_next_id": "BEFORE INSERT ON station.entries FOR EACH ROW EXECUTE FUNCTION station.entries_next_id()",
}
_INDEXES = {
    f"entries_{name}": f"CREATE INDEX entries_{name} ON station.entries USING btree ({columns})"
    for name, columns in (
        ("time", "time_utc"),
        ("action", "action"),
        ("operator", "operator_id"),
        ("chip", "chip_id"),
        ("material", "material"),
        ("verdict", "verdict"),
        ("station", "station_id, id"),
    )
}
_CONSTRAINT_INDEXES = {"entries_pkey", "entries_hash_key"}
_COLUMNS = (
    ("id", "bigint", "NO"),
    ("time_utc", "text", "NO"),
    ("action", "text", "NO"),
    ("operator_id", "text", "NO"),
    ("chip_id", "text", "YES"),
    ("material", "text", "YES"),
    ("verdict", "text", "YES"),
    ("refers_to", "bigint", "YES"),
    ("payload", "text", "NO"),
    ("prev_hash", "text", "NO"),
    ("hash", "text", "NO"),
    ("station_id", "text", "NO"),
    ("signature", "text", "YES"),
)

AUDIT_SCHEMA = SchemaPart(
    name="audit",
    postgresql=(
        _ENTRIES,
        *(
            f"CREATE FUNCTION station.{name}() RETURNS trigger LANGUAGE plpgsql AS $body${body}$body$"
            for name, body in _FUNCTIONS.items()
        ),
        *(f"CREATE TRIGGER {name} {definition}" for name, definition in _TRIGGERS.items()),
        *(definition.replace(" USING btree", "") for definition in _INDEXES.values()),
        "REVOKE ALL ON station.entries FROM PUBLIC",
    ),
    station_grants=("GRANT SELECT, INSERT ON station.entries TO {role}",),
)


def redact(url: str) -> str:
    """The URL without its password (for messages and the station's head record)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def lock_id(name: str) -> int:
    """A name as the signed 64-bit key ``pg_advisory_xact_lock`` takes."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def _connect(url: str, *, timeout_s: float, readonly: bool = False):
    import psycopg

    options = f"-c search_path={SCHEMA} -c lock_timeout={int(timeout_s * 1000)}"
    if readonly:
        options += " -c default_transaction_read_only=on"
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=max(1, round(timeout_s)),
        application_name="station",
        options=options,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=2,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _PgTransaction(Transaction):
    kind = "postgresql"

    def __init__(self, conn) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self._conn.execute(to_pyformat(sql) if params else sql, tuple(params) or None)
        return cursor.fetchall() if cursor.description is not None else []

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        with self._conn.cursor(name="station_stream") as cursor:
            cursor.itersize = 2000
            cursor.execute(to_pyformat(sql) if params else sql, tuple(params) or None)
            yield from cursor


class PostgresBackend(Backend):
    kind = "postgresql"

    def __init__(self, url: str, *, readonly: bool = False, timeout_s: float = 5.0) -> None:
        self.url = url
        self.readonly = readonly
        self.timeout_s = timeout_s
        self.location = redact(url)
        self._conn = None
        self._last_used = 0.0
        self._lock = threading.RLock()

    def _connection(self):
        import psycopg

        if self._conn is not None and self._conn.closed:
            self._conn = None
        if self._conn is not None and time.monotonic() - self._last_used > _IDLE_CHECK_S:
            try:  # a server restarted overnight: find out now, not with the morning's first record
                self._conn.execute("SELECT 1")
            except psycopg.Error:
                self.close()
        self._last_used = time.monotonic()
        if self._conn is None:
            try:
                self._conn = _connect(self.url, timeout_s=self.timeout_s, readonly=self.readonly)
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from exc
        return self._conn

    def _unavailable(self, exc: BaseException) -> AuditUnavailableError:
        return AuditUnavailableError(
            f"the lab's audit log server {self.location} cannot be reached ({_first_line(exc)}): "
            "nothing was recorded, and release stays blocked until the record is stored there"
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Transaction]:
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    if lock is not None:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id(lock),))
                    yield _PgTransaction(conn)
            except (ValueError, AuditError):
                raise
            except psycopg.Error as exc:
                broken = conn.closed or conn.broken
                if broken:
                    self.close()
                if broken or isinstance(exc, psycopg.OperationalError) and not isinstance(
                    exc, psycopg.errors.LockNotAvailable
                ):
                    raise self._unavailable(exc) from exc
                if isinstance(exc, psycopg.errors.UndefinedTable):
                    raise AuditError(
                        f"the server {self.location} has no station audit log: run `station audit init-server` "
                        "with the database owner's URL first (docs/LAB-LOG.md)"
                    ) from exc
                doing = "write the audit record" if lock is not None else "read the audit log"
                error = AuditWriteError if lock is not None else AuditError
                if isinstance(exc, psycopg.errors.LockNotAvailable):
                    raise error(
                        f"could not {doing} on {self.location}: other stations held the log for more than "
                        f"{self.timeout_s:g} s"
                    ) from exc
                raise error(f"could not {doing} on {self.location}: {_first_line(exc)}") from exc

    def schema_problems(self) -> list[str]:
        with self.transaction() as tx:
            tx.execute("SET LOCAL search_path TO pg_catalog")  # definitions printed with their schema, as written
            if tx.execute("SELECT to_regclass('station.entries')")[0][0] is None:
                raise AuditError(f"the server {self.location} has no station audit log (run station audit init-server)")
            problems = []
            columns = tuple(
                tx.execute(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_schema = 'station' AND table_name = 'entries' ORDER BY ordinal_position"
                )
            )
            if columns != _COLUMNS:
                problems.append("the entries table's columns differ from the station's schema: someone altered it")
            triggers = {
                name: (enabled, definition)
                for name, enabled, definition in tx.execute(
                    "SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger "
                    "WHERE tgrelid = 'station.entries'::regclass AND NOT tgisinternal"
                )
            }
            for name, definition in _TRIGGERS.items():
                if name not in triggers:
                    problems.append(f"the append-only trigger {name} is missing: someone altered the schema")
                elif triggers[name][1] != f"CREATE TRIGGER {name} {definition}":
                    problems.append(f"the trigger {name} differs from the station's schema: someone altered it")
                elif triggers[name][0] != "O":
                    problems.append(f"the append-only trigger {name} is disabled: someone altered the schema")
            for name in triggers.keys() - _TRIGGERS.keys():
                problems.append(f"an extra trigger {name} is on the entries table: someone altered the schema")
            bodies = dict(
                tx.execute(
                    "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'station'::regnamespace "
                    "AND proname LIKE 'entries%'"
                )
            )
            for name, body in _FUNCTIONS.items():
                if bodies.get(name) != body:
                    problems.append(f"the trigger function {name} is missing or altered: someone altered the schema")
            indexes = dict(
                tx.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'station' AND tablename = 'entries'")
            )
            for name, definition in _INDEXES.items():
                if indexes.get(name) != definition:
                    problems.append(f"the index {name} is missing or altered: someone altered the schema")
            for name in indexes.keys() - _INDEXES.keys() - _CONSTRAINT_INDEXES:
                problems.append(f"an extra index {name} is on the entries table: someone altered the schema")
            return problems


def _schema_parts() -> list[SchemaPart]:
    import importlib

    from station.audit.sql import SERVER_SCHEMA_PARTS

    parts = []
    for dotted in SERVER_SCHEMA_PARTS:
        module_name, _, attribute = dotted.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of the station is not installed
            raise
        part = getattr(module, attribute, None)
        if part is not None:
            parts.append(part)
    return parts


def init_server(
    owner_url: str,
    *,
    station_role: str = STATION_ROLE,
    login: str | None = None,
    password: str | None = None,
    parts: Sequence[SchemaPart] | None = None,
) -> list[str]:
    """Create the station's tables (once) and grant ``station_role`` SELECT and INSERT; returns what was done.

    With ``login`` (and ``password``), also creates that login role as a member of ``station_role``.
    """
    import psycopg
    from psycopg import sql

    done = []
    try:
        conn = _connect(owner_url, timeout_s=10)
    except psycopg.OperationalError as exc:
        raise AuditUnavailableError(f"the server {redact(owner_url)} cannot be reached ({_first_line(exc)})") from exc
    role = sql.Identifier(station_role)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("station-init-server"),))
            conn.execute("CREATE SCHEMA IF NOT EXISTS station")
            conn.execute("CREATE TABLE IF NOT EXISTS station.schema_parts (name TEXT PRIMARY KEY, created_utc TEXT NOT NULL)")
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (station_role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
                done.append(f"created role {station_role} (SELECT and INSERT only)")
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA station TO {}").format(role))
            conn.execute(sql.SQL("GRANT SELECT ON station.schema_parts TO {}").format(role))
            for part in _schema_parts() if parts is None else parts:
                if not conn.execute("SELECT 1 FROM station.schema_parts WHERE name = %s", (part.name,)).fetchone():
                    for statement in part.postgresql:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO station.schema_parts VALUES (%s, to_char(now() AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))",
                        (part.name,),
                    )
                    done.append(f"created the {part.name} tables")
                for grant in part.station_grants:
                    conn.execute(sql.SQL(grant).format(role=role))
            if login:
                if password is None:
                    raise ValueError("a login role needs a password")
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
                statement = "ALTER ROLE {} LOGIN PASSWORD {}" if exists else "CREATE ROLE {} LOGIN PASSWORD {}"
                conn.execute(sql.SQL(statement).format(sql.Identifier(login), sql.Literal(password)))
                conn.execute(sql.SQL("GRANT {} TO {}").format(role, sql.Identifier(login)))
                done.append(f"{'updated' if exists else 'created'} login role {login} in {station_role}")
    except psycopg.Error as exc:
        raise AuditError(f"init-server on {redact(owner_url)} failed: {_first_line(exc)}") from exc
    finally:
        conn.close()
    return done
