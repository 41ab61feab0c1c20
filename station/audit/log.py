"""The audit log: append-only, hash-chained records of every operator action.

    with AuditLog() as log:                      # the station's log (station.paths.audit_db_path())
        entry = log.append(EntryDraft(Action.OVERRIDE, operator_id="jdoe", chip_id="C-17", image=frame_rgb,
                                      predicted_material="plastic", material="ceramic", verdict=Verdict.OVERRIDE,
                                      reason="lid is ceramic under the label"))
        # entry.id is committed and fsynced: release to decapping may proceed

``append`` returns only once the entry is durably on disk, and raises ``AuditWriteError``
(nothing written) otherwise. A mistake is never edited: append a ``CORRECTION`` with
``refers_to`` naming the earlier entry. Storage, locking and durability: see ``station.audit.db``;
hashing and verification: ``station.audit.chain``; image archive: ``station.audit.archive``.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from station import __version__, paths
from station.audit import archive, db, keys
from station.audit.backend import Backend, SQLiteBackend, configured_location, is_url, open_backend
from station.audit.chain import GENESIS_HASH, VerifyResult, canonical_json, entry_hash, verify
from station.audit.draft import EntryDraft
from station.audit.entry import Action, AuditEntry, AuditError, AuditUnavailableError, AuditWriteError, Verdict
from station.storage import disk_is_full

_log = logging.getLogger(__name__)
APPEND_LOCK = "station-audit-append"

When = str | date | datetime


class AuditLog:
    """One audit log: a local SQLite file or a lab's PostgreSQL server (``postgresql://`` URL).

    ``location`` defaults to the station's log (``STATION_AUDIT_URL``, the settings'
    ``audit_url``, else ``station.paths.audit_db_path()``). ``archive_dir`` defaults to
    ``station.paths.archive_dir()`` for the station's log and for a server, and to ``archive/``
    beside any other database file; archived images are recorded relative to its parent, the
    data folder. ``station_id`` defaults to the settings' station id; ``key_dir`` holds the
    station's signing key (``station.audit.keys``). ``readonly=True`` opens an existing log for
    reading only. Thread-safe: calls are serialised, so a worker thread may append while the
    GUI thread queries.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        station_id: str | None = None,
        archive_dir: Path | None = None,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
        key_dir: Path | None = None,
    ) -> None:
        self._location: Path | str | None = path if is_url(path) else (Path(path) if path is not None else None)
        self._is_station_log = path is None
        self._archive_dir = Path(archive_dir) if archive_dir is not None else None
        self._station_id = station_id
        self._key_dir = key_dir
        self.readonly = readonly
        self.busy_timeout_s = busy_timeout_s
        self._backend: Backend | None = None
        self._checked_stations: set[str] = set()
        self._first_hash: str | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.describe_location() if self._location else 'default')!r}, readonly={self.readonly})"

    # -- places ---------------------------------------------------------------------------------

    @property
    def location(self) -> Path | str:
        """The SQLite file's path, or the server's URL."""
        if self._location is None:
            try:
                self._location = configured_location()
            except OSError as exc:
                raise db.write_error(Path(exc.filename or "?"), exc, "create the station's data folder") from exc
        return self._location

    @property
    def is_server(self) -> bool:
        return is_url(self.location)

    @property
    def path(self) -> Path:
        """The SQLite file (``AuditError`` for a log on a server: use ``location``)."""
        if self.is_server:
            raise AuditError(f"the audit log is on a server ({self.describe_location()}), not in a file")
        return self.location  # type: ignore[return-value]

    def describe_location(self) -> str:
        """Where the log is, for people (a server URL without its password)."""
        location = self.location
        if is_url(location):
            from station.audit.pg import redact

            return redact(str(location))
        return str(location)

    @property
    def archive_dir(self) -> Path:
        if self._archive_dir is None:
            if self._is_station_log or self.is_server:
                self._archive_dir = paths.archive_dir()
            else:
                self._archive_dir = self.path.parent / "archive"
        return self._archive_dir

    @property
    def data_dir(self) -> Path:
        """The folder archived image paths are relative to."""
        return self.archive_dir.parent

    def image_file(self, image_path: str | Path | None) -> Path | None:
        """The archived image a recorded ``image_path`` names (relative: under ``data_dir``)."""
        if not image_path:
            return None
        path = Path(image_path)
        return path if path.is_absolute() else self.data_dir / path

    def image_status(self, entry: AuditEntry) -> str:
        """``archive.image_status`` of the entry's image, found under this log's data folder."""
        return archive.image_status(entry.image_sha256, self.image_file(entry.image_path))

    @property
    def station_id(self) -> str:
        if self._station_id is None:
            from station.config import load_settings

            self._station_id = load_settings().station_id
        return self._station_id

    # -- connection -----------------------------------------------------------------------------

    def open(self) -> AuditLog:
        with self._lock:
            self._connect()
        return self

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def __enter__(self) -> AuditLog:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> Backend:
        if self._backend is None:
            self._backend = open_backend(self.location, readonly=self.readonly, busy_timeout_s=self.busy_timeout_s)
            if not self.readonly:
                archive.remove_stray_temporaries(self.archive_dir)
        if isinstance(self._backend, SQLiteBackend):
            self._backend.connection()  # opens (and for a writer, creates or upgrades) the file now
        return self._backend

    def _connection(self):
        """The SQLite connection (tests and tools); a server log has none."""
        backend = self._connect()
        if not isinstance(backend, SQLiteBackend):
            raise AuditError("a log on a server has no SQLite connection")
        return backend.connection()

    def status(self) -> LogStatus:
        """Whether the log can be written now, in words an operator can act on (for the window)."""
        try:
            with self._lock:
                backend = self._connect()
                with backend.transaction() as tx:
                    tx.execute("SELECT count(*) FROM entries")
        except AuditUnavailableError as exc:
            return LogStatus(self.describe_location(), False, str(exc), unreachable=True)
        except AuditError as exc:
            return LogStatus(self.describe_location(), False, str(exc))
        if not self.is_server and disk_is_full(self.path.parent):  # readable, but the next record would fail
            return LogStatus(self.describe_location(), False,
                             f"could not write to the audit log at {self.path}: the disk is full")
        where = "the lab's log server" if self.is_server else "the local audit log"
        return LogStatus(self.describe_location(), True, f"records go to {where} ({self.describe_location()})")

    # -- writing --------------------------------------------------------------------------------

    def append(self, draft: EntryDraft) -> AuditEntry:
        """Commit ``draft`` durably and return the entry with its id and hash.

        The draft's ``image`` is archived first and fills ``image_sha256``/``image_path``.
        Raises ``ValueError`` when ``refers_to`` names no entry (the draft checked the rest when
        it was made) and ``AuditWriteError`` when the log cannot be written (disk full, read-only,
        locked). An image archived before a failed commit stays in the archive, unreferenced and
        harmless.
        """
        if self.readonly:
            raise AuditWriteError(f"audit log {self.describe_location()} was opened read-only")
        if not isinstance(draft, EntryDraft):
            raise TypeError(f"AuditLog.append takes an EntryDraft, got {type(draft).__name__}")
        fields: dict[str, Any] = {"station_id": self.station_id, "app_version": __version__, **draft.record_fields()}
        if draft.image is not None:
            image_sha256, archived = self.archive_image(draft.image)
            fields.update(image_sha256=image_sha256, image_path=self._recorded_image_path(archived))
        return self._commit(fields)

    def _commit(self, fields: dict[str, Any]) -> AuditEntry:
        key = keys.load_station_key(self._key_dir)
        fields = {**fields, "signing_key": key.public_key_hex}
        with self._lock:
            backend = self._connect()
            # The lock serialises appends from every process (and, on a server, every station).
            with backend.transaction(lock=APPEND_LOCK) as tx:
                head = tx.execute("SELECT id, hash FROM entries ORDER BY id DESC LIMIT 1")
                last_id, prev_hash = head[0] if head else (0, GENESIS_HASH)
                refers_to = fields["refers_to"]
                if refers_to is not None and refers_to > last_id:
                    raise ValueError(f"refers_to={refers_to}: there is no audit entry {refers_to} (last is {last_id})")
                self._check_station_key(tx, fields["station_id"], key)
                now = datetime.now(timezone.utc)
                record = {
                    **fields,
                    "id": last_id + 1,
                    "time_utc": _iso_utc(now),
                    "utc_offset": _local_offset(now),
                }
                payload = canonical_json(record)
                digest = entry_hash(prev_hash, payload)
                signature = key.sign_head(record["id"], digest)
                tx.execute(
                    f"INSERT INTO entries ({', '.join(db.COLUMNS)}) VALUES ({', '.join('?' * len(db.COLUMNS))})",
                    [record["id"], *(record[name] for name in db.INDEXED_FIELDS), payload, prev_hash, digest, signature],
                )
                if self._first_hash is None:
                    self._first_hash = digest if record["id"] == 1 else tx.execute(
                        "SELECT hash FROM entries WHERE id = 1"
                    )[0][0]
            self._record_head(record["id"], digest, record["time_utc"])
        return AuditEntry.from_record(record, prev_hash, digest, signature)

    def _check_station_key(self, tx, station_id: str, key: keys.StationKey) -> None:
        """Refuse to sign as a station whose entries on this log carry another key (verify would fail)."""
        if station_id in self._checked_stations:
            return
        rows = tx.execute(
            "SELECT payload FROM entries WHERE station_id = ? AND signature IS NOT NULL ORDER BY id LIMIT 1",
            (station_id,),
        )
        if rows:
            theirs = json.loads(rows[0][0]).get("signing_key")
            if theirs != key.public_key_hex:
                raise AuditWriteError(
                    f"the audit log {self.describe_location()} holds entries of station {station_id!r} signed with "
                    f"key {keys.fingerprint(theirs)}, but this station's key {key.path} is {key.fingerprint}: "
                    "restore the station's key file, or give this station a new station id"
                )
        self._checked_stations.add(station_id)

    def _record_head(self, entry_id: int, head_hash: str, time_utc: str) -> None:
        try:
            keys.HeadAnchors(self._key_dir).record(
                self._anchor_location(), self._first_hash or head_hash, entry_id, head_hash, time_utc
            )
        except OSError as exc:  # the entry is committed; only the station's own truncation check is behind
            _log.warning("could not update the station's head record: %s", exc)

    def _anchor_location(self) -> str:
        return self._connect().location

    def archive_image(self, rgb: np.ndarray) -> tuple[str, Path]:
        """Store ``rgb`` losslessly (see ``station.audit.archive``); returns ``(sha256, path)``."""
        if self.readonly:
            raise AuditWriteError(f"audit log {self.describe_location()} was opened read-only")
        return archive.archive_image(rgb, self.archive_dir)

    def _recorded_image_path(self, archived: Path) -> str:
        """Relative to the data folder when the image is in it, so a moved data folder still verifies."""
        try:
            return archived.resolve().relative_to(self.data_dir.resolve()).as_posix()
        except ValueError:
            return str(archived)

    # -- reading --------------------------------------------------------------------------------

    def get(self, entry_id: int) -> AuditEntry:
        """The entry with this id; ``KeyError`` if there is none."""
        rows = self._select("WHERE id = ?", [int(entry_id)])
        if not rows:
            raise KeyError(f"no audit entry {entry_id} in {self.describe_location()}")
        return rows[0]

    def query(
        self,
        from_: When | None = None,
        to: When | None = None,
        operator: str | None = None,
        chip: str | None = None,
        material: str | None = None,
        verdict: Verdict | str | None = None,
        action: Action | str | None = None,
        limit: int | None = None,
        *,
        station: str | None = None,
        chip_contains: str | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, by id (oldest first unless ``newest_first``).

        ``from_`` and ``to`` are inclusive. A date (``date`` or ``"2026-05-09"``) means that
        whole day in the station's local time; a naive datetime is local time too. ``chip``
        is the whole chip ID; ``chip_contains`` a part of it, any case ("2431" finds "LM358-2431").
        """
        where, params = [], []
        if from_ is not None:
            where.append("time_utc >= ?")
            params.append(to_utc_bound(from_, end=False)[0])
        if to is not None:
            bound, exclusive = to_utc_bound(to, end=True)
            where.append("time_utc < ?" if exclusive else "time_utc <= ?")
            params.append(bound)
        for column, value in (
            ("operator_id", operator),
            ("chip_id", chip),
            ("material", material),
            ("verdict", verdict),
            ("action", action),
            ("station_id", station),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value.value if isinstance(value, (Action, Verdict)) else value)
        if chip_contains:
            # LIKE with lower() on both sides: PostgreSQL's LIKE is case-sensitive, SQLite's is not
            where.append("lower(chip_id) LIKE ? ESCAPE '!'")
            params.append("%" + _like_escaped(chip_contains.lower()) + "%")
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        clause += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            clause += " LIMIT ?"
            params.append(int(limit))
        return self._select(clause, params)

    def count(self) -> int:
        return self._read(lambda tx: tx.execute("SELECT count(*) FROM entries")[0][0])

    def last(self) -> AuditEntry | None:
        rows = self._select("ORDER BY id DESC LIMIT 1", [])
        return rows[0] if rows else None

    def verify(self, *, expect_head: str | None = None) -> VerifyResult:
        """Check the whole log (see ``station.audit.chain.verify``)."""
        with self._lock:
            if not self.readonly:
                self._connect()  # creates an empty log rather than failing on a missing file
            return verify(self.location, expect_head=expect_head)

    def _select(self, clause: str, params: list[Any]) -> list[AuditEntry]:
        def select(tx):
            # a schema-1 file opened read-only (so not upgraded) has no signature column
            signature = "NULL" if self._legacy_file() else "signature"
            return tx.execute(f"SELECT payload, prev_hash, hash, {signature} FROM entries {clause}", params)

        rows = self._read(select)
        return [
            AuditEntry.from_record(json.loads(payload), prev, digest, signature)
            for payload, prev, digest, signature in rows
        ]

    def _read(self, query):
        with self._lock:
            with self._connect().transaction() as tx:
                return query(tx)

    def _legacy_file(self) -> bool:
        backend = self._connect()
        return isinstance(backend, SQLiteBackend) and backend.schema_version() < db.SCHEMA_VERSION


@dataclass(frozen=True)
class LogStatus:
    """What the window shows about the log: where it is, and whether a record can be stored now."""

    location: str
    writable: bool
    message: str
    unreachable: bool = False  # the server cannot be reached (the station keeps release blocked)


def _iso_utc(moment: datetime) -> str:
    # Fixed width (always microseconds, always +00:00) so that text order is time order.
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _local_offset(moment: datetime) -> str:
    offset = moment.astimezone().utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def to_utc_bound(value: When, *, end: bool) -> tuple[str, bool]:
    """A query bound as stored-time text, and whether it is exclusive.

    A date (or ``"YYYY-MM-DD"``) is local midnight; as an end bound, the next local midnight
    (exclusive), so ``to="2026-05-09"`` includes all of that day. Naive datetimes are local.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a date or ISO 8601 time: {text!r} (use e.g. 2026-05-09 or 2026-05-09T14:30)") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.astimezone()  # naive: local time
        return _iso_utc(moment), False
    if isinstance(value, date):
        day = value + timedelta(days=1) if end else value
        return _iso_utc(datetime.combine(day, time.min).astimezone()), end
    raise TypeError(f"a time bound must be a date, datetime or ISO string, got {type(value).__name__}")


def write_selftest_entry(log: AuditLog) -> AuditEntry:
    """Write one SELFTEST entry (with an archived image) through the normal path and read it back.

    ``station selftest`` calls this, then ``verify(log.path)``. Raises ``AuditWriteError`` if the
    log cannot be written and ``AuditError`` if what was written does not read back identically.
    """
    ramp = np.linspace(0, 255, 48, dtype=np.uint8)
    image = np.stack([np.tile(ramp, (32, 1)), np.tile(ramp[::-1], (32, 1)), np.full((32, 48), 128, np.uint8)], axis=2)
    entry = log.append(EntryDraft(
        Action.SELFTEST,
        operator_id="selftest",
        image=image,
        probabilities={"plastic": 0.5, "ceramic": 0.25, "metallic": 0.25},
        details={"check": "audit write path: archive, append, read back"},
    ))
    if log.get(entry.id) != entry:
        raise AuditError(f"selftest entry {entry.id} in {log.path} does not read back as written")
    status = log.image_status(entry)
    if status != "ok":
        raise AuditError(f"selftest image {entry.image_path} is {status} after archiving")
    return entry


def _like_escaped(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (``%`` and ``_`` are not wildcards)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
