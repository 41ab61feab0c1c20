"""The audit database: schema, connections, and sqlite errors turned into clear messages.

One table ``entries``: the full entry as canonical JSON in ``payload`` plus copies of the
fields people filter on (time, action, operator, chip, material, verdict), indexed. The copies
are checked against the payload by ``verify``.

Append-only is enforced by triggers: UPDATE and DELETE abort, and an INSERT must carry the next
id. They guard against mistakes in code, not against someone with the file and a sqlite shell;
the hash chain and its signatures are what make such tampering evident, and ``verify`` fails
when a trigger, index or column differs from this schema (``schema_problems``).

Schema 2 adds ``station_id`` (index copy) and ``signature`` (the station's signature over the
entry's head, see ``station.audit.keys``). A schema-1 log is upgraded in place on the first
write; its entries stay unsigned and are covered by the first signed head after them.

One writer at a time: every append is a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's
write lock before it reads the previous hash, so two processes (GUI and ``station selftest``)
appending to the same file still form one unbroken chain; a writer waits up to
``busy_timeout_s`` for the lock, then gets ``AuditWriteError``. Durability: WAL with
``synchronous=FULL``, so a commit has reached the disk (fsync of the WAL) when it returns.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from station.audit.entry import AuditError, AuditWriteError
from station.storage import disk_is_full, is_network_path, is_writable_folder, sqlite_uri

SCHEMA_VERSION = 2

# Bumping the id by one is checked in the insert trigger; AUTOINCREMENT keeps the highest id
# ever used in sqlite_sequence, so a deleted tail of the chain is noticed by verify.
_SCHEMA = """
CREATE TABLE entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc    TEXT NOT NULL,
    action      TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    chip_id     TEXT,
    material    TEXT,
    verdict     TEXT,
    refers_to   INTEGER REFERENCES entries(id),
    payload     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash        TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
    station_id  TEXT,
    signature   TEXT
);
CREATE INDEX entries_time ON entries(time_utc);
CREATE INDEX entries_action ON entries(action);
CREATE INDEX entries_operator ON entries(operator_id);
CREATE INDEX entries_chip ON entries(chip_id);
CREATE INDEX entries_material ON entries(material);
CREATE INDEX entries_verdict ON entries(verdict);
CREATE INDEX entries_station ON entries(station_id, id);
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: UPDATE is not allowed, append a CORRECTION entry');
END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: DELETE is not allowed');
END;
CREATE TRIGGER entries_next_id BEFORE INSERT ON entries
WHEN NEW.id IS NULL OR NEW.id <> (SELECT COALESCE(MAX(id), 0) + 1 FROM entries)
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: an insert must carry the next id');
END;
"""

TRIGGERS = ("entries_no_update", "entries_no_delete", "entries_next_id")

# columns that copy the payload field of the same name (checked by verify)
INDEXED_FIELDS = ("time_utc", "action", "operator_id", "chip_id", "material", "verdict", "refers_to", "station_id")
COLUMNS = ("id", *INDEXED_FIELDS, "payload", "prev_hash", "hash", "signature")

# Schema 1 -> 2: new columns at the end (so a migrated table has the columns of a new one),
# index copies filled from the payload, triggers recreated.
_MIGRATE_1_TO_2 = """
DROP TRIGGER IF EXISTS entries_no_update;
DROP TRIGGER IF EXISTS entries_no_delete;
DROP TRIGGER IF EXISTS entries_next_id;
ALTER TABLE entries ADD COLUMN station_id TEXT;
ALTER TABLE entries ADD COLUMN signature TEXT;
UPDATE entries SET station_id = json_extract(payload, '$.station_id');
CREATE INDEX entries_station ON entries(station_id, id);
"""


def connect_writer(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open (creating if needed) the audit database for appending; AuditWriteError if it cannot be."""
    if is_network_path(path):
        # SQLite's locks do not hold over SMB or NFS, and journal_mode=WAL still answers "wal"
        # there: two stations appending would break the chain without an error.
        raise AuditWriteError(
            f"audit log {path} is on a network drive, where SQLite cannot lock the file safely: keep the "
            "station's own log on this PC's disk, or write to the lab's PostgreSQL log (set audit_url or "
            "STATION_AUDIT_URL, docs/LAB-LOG.md); a copy on a share can still be read (station audit verify --db)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc, "create the audit log's folder") from exc
    conn = None
    try:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise AuditWriteError(
                f"audit log {path}: the file system does not support SQLite's WAL mode (got {mode!r}); "
                "keep the station's data on a local disk"
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _ensure_schema(conn, path)
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise write_error(path, exc, "open the audit log for writing", busy_timeout_s) from exc
    except AuditError as exc:
        if conn is not None:
            conn.close()
        raise exc if isinstance(exc, AuditWriteError) else AuditWriteError(str(exc)) from exc


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open an existing audit database read-only (never creates it); AuditError if it cannot be.
    A log on a network share (UNC path, mapped drive) opens too: reading takes no write lock."""
    if not path.is_file():
        raise AuditError(f"no audit log at {path}")
    location = path.resolve()
    failure: sqlite3.Error | None = None
    # A WAL database in a folder we may not write needs a -shm file it cannot create; with no
    # writer around (none can write there either) reading the file as immutable is exact.
    for mode in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(sqlite_uri(location, mode), uri=True, isolation_level=None, check_same_thread=False)
        try:
            if _schema_version(conn, path) == 0:
                raise AuditError(f"{path} is not a station audit log (it has no audit schema)")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            failure = exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise AuditError(f"cannot read the audit log {path}: {exc}") from exc
        except AuditError:
            conn.close()
            raise
    raise AuditError(f"cannot read the audit log {path}: {failure}") from failure


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version, 0 for a new empty file; AuditError for a newer or foreign database."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise AuditError(
            f"audit log {path} has schema version {version}; this station understands up to "
            f"{SCHEMA_VERSION} (it was written by a newer station version)"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0:
        raise AuditError(f"{path} is an SQLite database but not a station audit log")
    return version


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    if _schema_version(conn, path) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another writer may have created it while we waited for the lock.
        version = _schema_version(conn, path)
        if version == 0:
            for statement in _split_statements(_SCHEMA):
                conn.execute(statement)
        elif version == 1:
            for statement in _split_statements(_MIGRATE_1_TO_2):
                conn.execute(statement)
            for statement in _split_statements(_SCHEMA):
                if statement.startswith("CREATE TRIGGER"):
                    conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _schema_objects(conn: sqlite3.Connection) -> dict[tuple[str, str], object]:
    """What ``verify`` compares: the entries table's columns, and each index and trigger on it."""
    objects: dict[tuple[str, str], object] = {
        ("table", "entries"): tuple(tuple(row[1:]) for row in conn.execute("PRAGMA table_xinfo(entries)")),
    }
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'entries' AND type IN ('index', 'trigger')"
    )
    for kind, name, sql in rows:
        objects[(kind, name)] = " ".join((sql or "").split())
    return objects


def _expected_objects() -> dict[tuple[str, str], object]:
    reference = sqlite3.connect(":memory:")
    try:
        for statement in _split_statements(_SCHEMA):
            reference.execute(statement)
        return _schema_objects(reference)
    finally:
        reference.close()


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """How the log's schema differs from the one this station creates ([] when it is the same)."""
    version = schema_version(conn)
    if version != SCHEMA_VERSION:
        return [f"the log has schema version {version}, not {SCHEMA_VERSION}: it carries no signatures yet "
                "(any append by this station version upgrades it)"]
    found, expected = _schema_objects(conn), _expected_objects()
    problems = []
    for key, value in expected.items():
        kind, name = key
        if key not in found:
            what = "append-only trigger" if kind == "trigger" else kind
            problems.append(f"the {what} {name} is missing: someone altered the schema")
        elif found[key] != value:
            problems.append(f"the {kind} {name} differs from the station's schema: someone altered it")
    for kind, name in found.keys() - expected.keys():
        problems.append(f"an extra {kind} {name} is on the entries table: someone altered the schema")
    return problems


def _split_statements(script: str) -> list[str]:
    """Statements of ``script`` (executescript would commit our transaction first)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def write_error(
    path: Path, exc: BaseException, doing: str = "write the audit record", busy_timeout_s: float | None = None
) -> AuditWriteError:
    """A message an operator (and the person fixing the station) can act on."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    os_errno = getattr(exc, "errno", None)
    # SQLite names neither ENOSPC nor EROFS when it meets them opening a file or writing its
    # journal ("disk I/O error", "unable to open database file"): look at the disk itself.
    vague = name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "I/O error" in text or "unable to open" in text
    folder = Path(path).parent
    if name == "SQLITE_FULL" or os_errno in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text or (
        vague and disk_is_full(folder)
    ):
        reason = "the disk is full"
    elif name.startswith("SQLITE_READONLY") or os_errno in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or (
        vague and folder.is_dir() and not is_writable_folder(folder)
    ):
        reason = "the audit log or its folder is read-only (check permissions and the data disk)"
    elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        reason = "the audit log file cannot be opened or created (missing folder, or no write permission)"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        waited = f" for more than {busy_timeout_s:g} s" if busy_timeout_s is not None else ""
        reason = f"the audit log is locked by another writer{waited}"
    elif name.startswith("SQLITE_IOERR") or "I/O error" in text:
        reason = "a disk I/O error occurred"
    elif name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text or "not a database" in text:
        reason = "the file is damaged or is not an audit log"
    else:
        reason = "unexpected error"
    return AuditWriteError(f"could not {doing} at {path}: {reason} ({type(exc).__name__}: {text})")
