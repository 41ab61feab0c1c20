"""The audit log: append-only, hash-chained records of every operator action.

    with AuditLog() as log:                      # the station's log (station.paths.audit_db_path())
        entry = log.append(Action.OVERRIDE, operator_id="jdoe", chip_id="C-17", image=frame_rgb,
                           predicted_material="plastic", material="ceramic", verdict=Verdict.OVERRIDE,
                           reason="lid is ceramic under the label")
        # entry.id is committed and fsynced: release to decapping may proceed

``append`` returns only once the entry is durably on disk, and raises ``AuditWriteError``
(nothing written) otherwise. A mistake is never edited: append a ``CORRECTION`` with
``refers_to`` naming the earlier entry. Storage, locking and durability: see ``station.audit.db``;
hashing and verification: ``station.audit.chain``; image archive: ``station.audit.archive``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from station import __version__, paths
from station.audit import archive, db
from station.audit.chain import GENESIS_HASH, VerifyResult, canonical_json, entry_hash, verify
from station.audit.entry import Action, AuditEntry, AuditError, AuditWriteError, Verdict

When = str | date | datetime


class AuditLog:
    """One audit database. Opens its connection on first use; a context manager closes it.

    ``archive_dir`` defaults to ``station.paths.archive_dir()`` for the station's log and to
    ``archive/`` beside any other database. ``station_id`` defaults to the settings' station id.
    ``readonly=True`` opens an existing log for reading only (export, inspection). Thread-safe:
    calls are serialised, so a worker thread may append while the GUI thread queries.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        station_id: str | None = None,
        archive_dir: Path | None = None,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._is_station_log = path is None
        self._archive_dir = Path(archive_dir) if archive_dir is not None else None
        self._station_id = station_id
        self.readonly = readonly
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"AuditLog({str(self._path or 'default')!r}, readonly={self.readonly})"

    # -- places ---------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        if self._path is None:
            try:
                self._path = paths.audit_db_path()
            except OSError as exc:
                raise db.write_error(Path(exc.filename or "?"), exc, "create the station's data folder") from exc
        return self._path

    @property
    def archive_dir(self) -> Path:
        if self._archive_dir is None:
            self._archive_dir = paths.archive_dir() if self._is_station_log else self.path.parent / "archive"
        return self._archive_dir

    @property
    def station_id(self) -> str:
        if self._station_id is None:
            from station.config import load_settings

            self._station_id = load_settings().station_id
        return self._station_id

    # -- connection -----------------------------------------------------------------------------

    def open(self) -> AuditLog:
        with self._lock:
            self._connection()
        return self

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AuditLog:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.readonly:
                self._conn = db.connect_reader(self.path)
            else:
                self._conn = db.connect_writer(self.path, self.busy_timeout_s)
                archive.remove_stray_temporaries(self.archive_dir)
        return self._conn

    # -- writing --------------------------------------------------------------------------------

    def append(
        self,
        action: Action | str,
        *,
        operator_id: str,
        chip_id: str | None = None,
        lot_id: str | None = None,
        serial_id: str | None = None,
        recipe: str | None = None,
        models: dict[str, str] | None = None,
        thresholds: dict[str, float] | None = None,
        image: np.ndarray | None = None,
        image_sha256: str | None = None,
        image_path: str | Path | None = None,
        probabilities: dict[str, float] | None = None,
        predicted_material: str | None = None,
        uncertain: bool | None = None,
        defects: list[dict[str, Any]] | None = None,
        material: str | None = None,
        verdict: Verdict | str | None = None,
        reason: str | None = None,
        decap_method: str | None = None,
        refers_to: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Commit one entry durably and return it with its id and hash.

        ``image`` (HxWx3 RGB uint8) is archived first and fills ``image_sha256``/``image_path``.
        ``material`` defaults to ``predicted_material``. ``models`` maps model name to weights
        sha256; ``defects`` is a list of JSON-able dicts (class, score, box, ...). numpy values
        are accepted and stored as plain numbers and lists.

        Raises ``ValueError`` for an entry that must not be written (unknown action or verdict,
        empty operator id, an override without a reason or, of a material call, without the
        material, a correction without ``refers_to`` or reason, ``refers_to`` naming no entry,
        a value JSON cannot hold) and ``AuditWriteError`` when the log cannot be written (disk
        full, read-only, locked). An image archived before a failed commit stays in the archive,
        unreferenced and harmless.
        """
        if self.readonly:
            raise AuditWriteError(f"audit log {self._path} was opened read-only")
        try:
            action = Action(action)
        except ValueError:
            raise ValueError(f"unknown audit action {action!r}; one of {[a.value for a in Action]}") from None
        if verdict is not None:
            try:
                verdict = Verdict(verdict)
            except ValueError:
                raise ValueError(f"unknown verdict {verdict!r}; one of {[v.value for v in Verdict]}") from None
        if not isinstance(operator_id, str) or not operator_id.strip():
            raise ValueError(f"an audit entry needs a non-empty operator id, got {operator_id!r}")
        has_reason = isinstance(reason, str) and bool(reason.strip())
        if action is Action.OVERRIDE or verdict is Verdict.OVERRIDE:
            if not has_reason:
                raise ValueError(f"an override needs a non-empty reason, got {reason!r}")
            if predicted_material is not None and not material:  # no call: an inspection-only recipe's findings
                raise ValueError("an override of a material call needs the material the operator chose (material=...)")
        if action is Action.CORRECTION:
            if refers_to is None:
                raise ValueError("a CORRECTION needs refers_to, the id of the entry it corrects")
            if not has_reason:
                raise ValueError(f"a CORRECTION needs a non-empty reason, got {reason!r}")
        if refers_to is not None and (isinstance(refers_to, bool) or not isinstance(refers_to, int) or refers_to < 1):
            raise ValueError(f"refers_to must be an entry id (a positive int), got {refers_to!r}")
        if image is not None:
            if image_sha256 is not None or image_path is not None:
                raise ValueError("give either image (to archive it) or image_sha256/image_path, not both")
            image_sha256, archived = self.archive_image(image)
            image_path = str(archived)

        fields: dict[str, Any] = {
            "station_id": self.station_id,
            "operator_id": operator_id,
            "action": action.value,
            "app_version": __version__,
            "chip_id": chip_id,
            "lot_id": lot_id,
            "serial_id": serial_id,
            "recipe": recipe,
            "models": models or {},
            "thresholds": thresholds or {},
            "image_sha256": image_sha256,
            "image_path": None if image_path is None else str(image_path),
            "probabilities": probabilities or {},
            "predicted_material": predicted_material,
            "uncertain": uncertain,
            "defects": defects or [],
            "material": material if material is not None else predicted_material,
            "verdict": None if verdict is None else verdict.value,
            "reason": reason,
            "decap_method": decap_method,
            "refers_to": refers_to,
            "details": details or {},
        }
        fields = {name: _json_value(name, value) for name, value in fields.items()}
        return self._commit(fields)

    def _commit(self, fields: dict[str, Any]) -> AuditEntry:
        with self._lock:
            path = self.path
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")  # the write lock, before reading the chain head
                head = conn.execute("SELECT id, hash FROM entries ORDER BY id DESC LIMIT 1").fetchone()
                last_id, prev_hash = head if head is not None else (0, GENESIS_HASH)
                refers_to = fields["refers_to"]
                if refers_to is not None and refers_to > last_id:
                    raise ValueError(f"refers_to={refers_to}: there is no audit entry {refers_to} (last is {last_id})")
                now = datetime.now(timezone.utc)
                record = {
                    **fields,
                    "id": last_id + 1,
                    "time_utc": _iso_utc(now),
                    "utc_offset": _local_offset(now),
                }
                payload = canonical_json(record)
                digest = entry_hash(prev_hash, payload)
                conn.execute(
                    f"INSERT INTO entries ({', '.join(db.COLUMNS)}) VALUES ({', '.join('?' * len(db.COLUMNS))})",
                    [record["id"], *(record[name] for name in db.INDEXED_FIELDS), payload, prev_hash, digest],
                )
                conn.execute("COMMIT")
            except ValueError:
                _rollback(conn)
                raise
            except sqlite3.Error as exc:
                _rollback(conn)
                # A fresh connection next time: after an I/O error this one may be unusable.
                self.close()
                raise db.write_error(path, exc, "write the audit record", self.busy_timeout_s) from exc
            except BaseException:
                _rollback(conn)
                raise
        return AuditEntry.from_record(record, prev_hash, digest)

    def archive_image(self, rgb: np.ndarray) -> tuple[str, Path]:
        """Store ``rgb`` losslessly (see ``station.audit.archive``); returns ``(sha256, path)``."""
        if self.readonly:
            raise AuditWriteError(f"audit log {self._path} was opened read-only")
        return archive.archive_image(rgb, self.archive_dir)

    # -- reading --------------------------------------------------------------------------------

    def get(self, entry_id: int) -> AuditEntry:
        """The entry with this id; ``KeyError`` if there is none."""
        rows = self._select("WHERE id = ?", [int(entry_id)])
        if not rows:
            raise KeyError(f"no audit entry {entry_id} in {self.path}")
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
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, by id (oldest first unless ``newest_first``).

        ``from_`` and ``to`` are inclusive. A date (``date`` or ``"2026-05-09"``) means that
        whole day in the station's local time; a naive datetime is local time too.
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
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value.value if isinstance(value, (Action, Verdict)) else value)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        clause += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            clause += " LIMIT ?"
            params.append(int(limit))
        return self._select(clause, params)

    def count(self) -> int:
        with self._lock:
            return self._read(lambda conn: conn.execute("SELECT count(*) FROM entries").fetchone()[0])

    def last(self) -> AuditEntry | None:
        rows = self._select("ORDER BY id DESC LIMIT 1", [])
        return rows[0] if rows else None

    def verify(self) -> VerifyResult:
        """Recompute the whole chain (see ``station.audit.chain.verify``)."""
        with self._lock:
            if self._conn is None and not self.readonly:
                self._connection()  # creates an empty log rather than failing on a missing file
            return verify(self.path)

    def _select(self, clause: str, params: list[Any]) -> list[AuditEntry]:
        sql = f"SELECT payload, prev_hash, hash FROM entries {clause}"
        with self._lock:
            rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [AuditEntry.from_record(json.loads(payload), prev, digest) for payload, prev, digest in rows]

    def _read(self, query):
        try:
            return query(self._connection())
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc}") from exc


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite has already rolled back (e.g. after SQLITE_FULL); nothing was written


def _json_value(name: str, value: Any) -> Any:
    """``value`` as it will read back from the log (numpy -> lists and numbers, tuples -> lists)."""
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit field {name!r} cannot be stored: {exc}") from exc


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
    entry = log.append(
        Action.SELFTEST,
        operator_id="selftest",
        image=image,
        probabilities={"plastic": 0.5, "ceramic": 0.25, "metallic": 0.25},
        details={"check": "audit write path: archive, append, read back"},
    )
    if log.get(entry.id) != entry:
        raise AuditError(f"selftest entry {entry.id} in {log.path} does not read back as written")
    status = archive.image_status(entry.image_sha256, entry.image_path)
    if status != "ok":
        raise AuditError(f"selftest image {entry.image_path} is {status} after archiving")
    return entry
