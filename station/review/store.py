"""The persistent state of one folder's review: per file, its result, error and review decision.

One SQLite database per (folder, recipe) under ``station.paths.data_dir()/batches/``, so the GUI
and ``station batch`` share it: a folder inspected overnight on the command line opens in the
GUI with nothing left to compute. Rows are keyed by the file's path relative to the folder and
carry its size, mtime and sha256:

* a new file is ``pending``;
* a file whose size or mtime changed goes to ``check``: the runner hashes it, and only a
  different sha256 makes it ``pending`` again (its earlier review no longer applies);
* a result computed with other models or thresholds (another recipe *fingerprint*) is
  ``pending`` again; a file that cannot be decoded stays an error until it changes;
* a file no longer in the folder keeps its row but is hidden (``present = 0``);
* an error that is not the file's content (the file could not be opened, a dangling link, the
  station's disk was full while storing its maps) carries the fingerprint ``RETRY_NEXT_RUN``
  and is read again by the next run.

The table in the GUI holds only :class:`ItemRow` (a few numbers per file); full results are
read one at a time (:meth:`BatchStore.record`) or streamed (:meth:`BatchStore.iter_records`),
so memory stays flat however large the folder. Decisions are recorded here for resuming; the
audit log holds the authoritative, hash-chained record of each.

WAL journal and ``synchronous=NORMAL``: this is a working cache of recomputable results
(a crash loses at most the last batch); the audit log is the durable record. Every thread
opens its own ``BatchStore`` on the same file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from station import paths
from station.inference.results import InspectionResult
from station.storage import describe_os_error, disk_is_full, is_writable_folder
from station.review.scan import FolderScan, unsupported_reason

SCHEMA_VERSION = 2  # 2: attention_on_part
STORE_FILE = "review.sqlite3"
RETRY_NEXT_RUN = "retry"  # the fingerprint of an error row the next run reads again (never a recipe's)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    present INTEGER NOT NULL DEFAULT 1,
    supported INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    state TEXT NOT NULL,
    fingerprint TEXT,
    error TEXT,
    width INTEGER,
    height INTEGER,
    material TEXT,
    confidence REAL,
    uncertain INTEGER,
    n_defects INTEGER,
    top_defect_label TEXT,
    top_defect_score REAL,
    has_maps INTEGER NOT NULL DEFAULT 0,
    result_json TEXT,
    inspected_at TEXT,
    review TEXT,
    reviewed_material TEXT,
    review_reason TEXT,
    reviewed_by TEXT,
    reviewed_at TEXT,
    audit_entry_id INTEGER,
    attention_on_part REAL
);
CREATE INDEX IF NOT EXISTS items_state ON items (present, state);
"""

_ROW_COLUMNS = (
    "id, path, state, sha256, material, confidence, uncertain, n_defects, top_defect_score, error, review, "
    "reviewed_material, audit_entry_id, attention_on_part"
)


class ItemState(str, Enum):
    PENDING = "pending"  # to inspect
    CHECK = "check"  # changed on disk since inspected: hash it, recompute only if the content differs
    DONE = "done"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class Review(str, Enum):
    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"

    def __str__(self) -> str:
        return self.value


class StoreError(Exception):
    """The batch store cannot be opened or written; the message names the file."""


@dataclass(frozen=True, slots=True)
class ItemRow:
    """What the results table shows for one file: small, so 10,000 of them cost a few MB."""

    item_id: int
    relative_path: str
    state: str
    sha256: str | None
    material: str | None
    confidence: float | None
    uncertain: bool | None
    n_defects: int | None
    top_defect_score: float | None
    error: str | None
    review: str | None
    reviewed_material: str | None
    audit_entry_id: int | None
    attention_on_part: float | None = None  # share of the attention map inside the part (maps only)

    @property
    def is_done(self) -> bool:
        return self.state == ItemState.DONE.value

    @property
    def is_error(self) -> bool:
        return self.state == ItemState.ERROR.value

    @property
    def is_reviewed(self) -> bool:
        return self.review is not None

    @property
    def has_defects(self) -> bool:
        return bool(self.n_defects)

    @property
    def is_confident_and_clean(self) -> bool:
        """Inspected, not uncertain (or no classifier), no defect reported: a bulk-accept candidate."""
        return self.is_done and not self.uncertain and not self.n_defects

    @property
    def status_text(self) -> str:
        if self.review == Review.ACCEPTED.value:
            return "accepted"
        if self.review == Review.OVERRIDDEN.value:
            return f"overridden → {self.reviewed_material}"
        if self.is_error:
            return "error"
        if self.is_done:
            return "not reviewed"
        return "queued"


@dataclass(frozen=True)
class ItemRecord:
    """Everything stored about one file (one at a time: the detail view, exports, audit drafts)."""

    row: ItemRow
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    top_defect_label: str | None
    has_maps: bool
    result: InspectionResult | None  # as stored: no attention maps
    inspected_at: str | None
    review_reason: str | None
    reviewed_by: str | None
    reviewed_at: str | None


@dataclass(frozen=True)
class WorkItem:
    """A file the runner has to read: to inspect it, check its hash, or redo its thumbnail."""

    item_id: int
    relative_path: str
    state: str
    sha256: str | None  # the content it was inspected with (``check`` and thumbnail-only items)

    @property
    def needs_inspection(self) -> bool:
        return self.state in (ItemState.PENDING.value, ItemState.CHECK.value)


@dataclass(frozen=True)
class ItemOutcome:
    """What the runner found for one file; ``BatchStore.write_outcomes`` records it."""

    item_id: int
    size: int
    mtime_ns: int
    sha256: str | None
    state: ItemState  # DONE, ERROR, or unchanged (DONE with ``unchanged``)
    unchanged: bool = False  # the hash matched the stored one: keep the stored result
    error: str | None = None
    fingerprint: str | None = None  # None for errors that do not depend on the models (unreadable files)
    width: int | None = None
    height: int | None = None
    material: str | None = None
    confidence: float | None = None
    uncertain: bool | None = None
    n_defects: int | None = None
    top_defect_label: str | None = None
    top_defect_score: float | None = None
    has_maps: bool = False
    result: dict[str, Any] | None = None  # InspectionResult.to_dict(), as stored
    attention_on_part: float | None = None


@dataclass(frozen=True)
class SyncSummary:
    new: int
    changed: int
    removed: int
    unchanged: int


@dataclass(frozen=True)
class StoreCounts:
    total: int
    done: int
    errors: int
    pending: int
    reviewed: int


def store_key(folder: Path, recipe_name: str) -> str:
    return hashlib.sha256(f"{Path(folder).resolve()}\n{recipe_name}".encode()).hexdigest()[:24]


def store_dir(folder: Path, recipe_name: str) -> Path:
    """Where the review of ``folder`` with ``recipe_name`` lives (created by ``BatchStore.open``)."""
    return paths.data_dir() / "batches" / store_key(folder, recipe_name)


def recipe_fingerprint(
    recipe_dict: dict[str, Any], models: Iterable[tuple[str, str]], thresholds: dict[str, float],
    reference_sha256: str | None = None,
) -> str:
    """Identifies what produced a result: the recipe, each model's weights sha256, the thresholds
    and, for recipes that compare against one, the reference image."""
    payload: dict[str, Any] = {
        "recipe": recipe_dict,
        "models": sorted(models),
        "thresholds": {k: round(float(v), 9) for k, v in sorted(thresholds.items())},
    }
    if reference_sha256 is not None:
        payload["reference"] = reference_sha256
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _reason(exc: BaseException, path: Path) -> str:
    """SQLite's words, with the disk's state when SQLite hides it ("disk I/O error" on a full disk)."""
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    text = str(exc)
    if "disk is full" in text or disk_is_full(path.parent):
        return f"the disk is full ({text})"
    if path.parent.is_dir() and not is_writable_folder(path.parent):
        return f"the folder is read-only ({text})"
    return text


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _row(values: tuple) -> ItemRow:
    (item_id, path, state, sha, material, confidence, uncertain, n_defects, top, error, review, reviewed, entry,
     on_part) = values
    return ItemRow(
        item_id, path, state, sha, material, confidence, None if uncertain is None else bool(uncertain), n_defects,
        top, error, review, reviewed, entry, on_part,
    )


class BatchStore:
    """The review database of one folder and recipe. Not for concurrent use: one per thread."""

    def __init__(self, directory: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STORE_FILE
        self.maps_dir = self.directory / "maps"
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def for_folder(cls, folder: Path, recipe_name: str) -> BatchStore:
        store = cls(store_dir(folder, recipe_name))
        store.open()
        store.set_meta(folder=str(Path(folder).resolve()), recipe=recipe_name)
        return store

    # -- connection -----------------------------------------------------------------------
    def open(self) -> BatchStore:
        if self._conn is not None:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # used by one thread at a time; a worker's store may be closed by its owner once the worker stopped
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise StoreError(f"batch store {self.path} has schema {version}, newer than this station ({SCHEMA_VERSION})")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
            if "attention_on_part" not in columns:  # a version-1 store: its results are recomputed anyway
                conn.execute("ALTER TABLE items ADD COLUMN attention_on_part REAL")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the batch store {self.path}: {_reason(exc, self.path)}") from exc
        self._conn = conn
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> BatchStore:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.open()
        assert self._conn is not None
        return self._conn

    def _write(self, statements) -> Any:
        """Run ``statements(conn)`` in one IMMEDIATE transaction."""
        conn = self._db
        try:
            conn.execute("BEGIN IMMEDIATE")
            value = statements(conn)
            conn.execute("COMMIT")
            return value
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot write the batch store {self.path}: {_reason(exc, self.path)}") from exc
            raise

    # -- meta -----------------------------------------------------------------------------
    def set_meta(self, **values: str) -> None:
        self._write(lambda conn: conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        ))

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- planning -------------------------------------------------------------------------
    def sync(self, scan: FolderScan) -> SyncSummary:
        """Bring the rows in line with what is in the folder now (see the module docstring)."""

        def statements(conn: sqlite3.Connection) -> SyncSummary:
            known = {
                path: (item_id, size, mtime, state, sha, present)
                for item_id, path, size, mtime, state, sha, present in conn.execute(
                    "SELECT id, path, size, mtime_ns, state, sha256, present FROM items"
                )
            }
            new = changed = unchanged = 0
            seen: set[str] = set()
            for file in scan.files:
                seen.add(file.relative_path)
                previous = known.get(file.relative_path)
                if previous is None:
                    new += 1
                    if file.supported:
                        conn.execute(
                            "INSERT INTO items (path, supported, size, mtime_ns, state) VALUES (?, 1, ?, ?, ?)",
                            (file.relative_path, file.size, file.mtime_ns, ItemState.PENDING.value),
                        )
                    else:
                        conn.execute(
                            "INSERT INTO items (path, supported, size, mtime_ns, state, error) VALUES (?, 0, ?, ?, ?, ?)",
                            (file.relative_path, file.size, file.mtime_ns, ItemState.ERROR.value,
                             unsupported_reason(file.relative_path)),
                        )
                    continue
                item_id, size, mtime, state, sha, _ = previous
                if (size, mtime) == (file.size, file.mtime_ns):
                    unchanged += 1
                    conn.execute("UPDATE items SET present = 1 WHERE id = ?", (item_id,))
                    continue
                changed += 1
                if not file.supported:
                    next_state = ItemState.ERROR.value
                elif sha is not None and state in (ItemState.DONE.value, ItemState.CHECK.value):
                    next_state = ItemState.CHECK.value
                else:
                    next_state = ItemState.PENDING.value
                conn.execute(
                    "UPDATE items SET present = 1, size = ?, mtime_ns = ?, state = ? WHERE id = ?",
                    (file.size, file.mtime_ns, next_state, item_id),
                )
            gone = [known[path][0] for path in known.keys() - seen if known[path][5]]
            conn.executemany("UPDATE items SET present = 0 WHERE id = ?", [(i,) for i in gone])
            return SyncSummary(new, changed, len(gone), unchanged)

        return self._write(statements)

    def invalidate_other_fingerprints(self, fingerprint: str) -> int:
        """Results (and model errors) from other models or thresholds are computed again."""
        return self._write(lambda conn: conn.execute(
            "UPDATE items SET state = ? WHERE present = 1 AND supported = 1 AND state IN (?, ?, ?) "
            "AND fingerprint IS NOT NULL AND fingerprint != ?",
            (ItemState.PENDING.value, ItemState.DONE.value, ItemState.CHECK.value, ItemState.ERROR.value, fingerprint),
        ).rowcount)

    def work_items(self) -> list[WorkItem]:
        """Present files to read, in folder order: pending, to check, then everything else done
        (whose thumbnails the runner makes sure of)."""
        rows = self._db.execute(
            "SELECT id, path, state, sha256 FROM items WHERE present = 1 AND supported = 1 ORDER BY id"
        ).fetchall()
        return [WorkItem(*row) for row in rows]

    # -- results --------------------------------------------------------------------------
    def write_outcomes(self, outcomes: Iterable[ItemOutcome]) -> None:
        """Record a batch of outcomes in one transaction. A new result clears the earlier review."""
        now = _now()

        def statements(conn: sqlite3.Connection) -> None:
            for outcome in outcomes:
                if outcome.unchanged:
                    conn.execute(
                        "UPDATE items SET size = ?, mtime_ns = ?, state = CASE WHEN state = ? THEN ? ELSE state END "
                        "WHERE id = ?",
                        (outcome.size, outcome.mtime_ns, ItemState.CHECK.value, ItemState.DONE.value, outcome.item_id),
                    )
                    continue
                conn.execute(
                    "UPDATE items SET size = ?, mtime_ns = ?, sha256 = ?, state = ?, fingerprint = ?, error = ?, "
                    "width = ?, height = ?, material = ?, confidence = ?, uncertain = ?, n_defects = ?, "
                    "top_defect_label = ?, top_defect_score = ?, has_maps = ?, result_json = ?, inspected_at = ?, "
                    "attention_on_part = ?, review = NULL, reviewed_material = NULL, review_reason = NULL, reviewed_by = NULL, "
                    "reviewed_at = NULL, audit_entry_id = NULL WHERE id = ?",
                    (
                        outcome.size, outcome.mtime_ns, outcome.sha256, outcome.state.value, outcome.fingerprint,
                        outcome.error, outcome.width, outcome.height, outcome.material, outcome.confidence,
                        None if outcome.uncertain is None else int(outcome.uncertain), outcome.n_defects,
                        outcome.top_defect_label, outcome.top_defect_score, int(outcome.has_maps),
                        None if outcome.result is None else json.dumps(outcome.result), now,
                        outcome.attention_on_part, outcome.item_id,
                    ),
                )

        self._write(statements)

    def set_review(
        self, item_id: int, review: Review, *, material: str | None, reason: str | None, operator_id: str,
        audit_entry_id: int,
    ) -> ItemRow:
        def statements(conn: sqlite3.Connection) -> None:
            updated = conn.execute(
                "UPDATE items SET review = ?, reviewed_material = ?, review_reason = ?, reviewed_by = ?, "
                "reviewed_at = ?, audit_entry_id = ? WHERE id = ? AND state = ?",
                (review.value, material, reason, operator_id, _now(), audit_entry_id, item_id, ItemState.DONE.value),
            ).rowcount
            if updated != 1:
                raise StoreError(f"item {item_id} of {self.path} has no result to review")

        self._write(statements)
        return self.row(item_id)

    # -- reading --------------------------------------------------------------------------
    def rows(self) -> list[ItemRow]:
        """Every file now in the folder, in folder order."""
        return [_row(r) for r in self._db.execute(f"SELECT {_ROW_COLUMNS} FROM items WHERE present = 1 ORDER BY id")]

    def row(self, item_id: int) -> ItemRow:
        values = self._db.execute(f"SELECT {_ROW_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if values is None:
            raise KeyError(f"no item {item_id} in {self.path}")
        return _row(values)

    def rows_by_id(self, item_ids: Iterable[int]) -> list[ItemRow]:
        ids = list(item_ids)
        found: list[ItemRow] = []
        for start in range(0, len(ids), 500):  # SQLite's variable limit
            chunk = ids[start : start + 500]
            query = f"SELECT {_ROW_COLUMNS} FROM items WHERE id IN ({', '.join('?' * len(chunk))})"
            found.extend(_row(r) for r in self._db.execute(query, chunk))
        return found

    _RECORD_COLUMNS = (
        f"{_ROW_COLUMNS}, size, mtime_ns, width, height, top_defect_label, has_maps, result_json, inspected_at, "
        "review_reason, reviewed_by, reviewed_at"
    )

    @staticmethod
    def _record(values: tuple) -> ItemRecord:
        row = _row(values[:14])
        size, mtime, width, height, label, has_maps, result_json, inspected, reason, by, at = values[14:]
        return ItemRecord(
            row, size, mtime, width, height, label, bool(has_maps),
            None if result_json is None else InspectionResult.from_dict(json.loads(result_json)), inspected, reason, by, at,
        )

    def record(self, item_id: int) -> ItemRecord:
        values = self._db.execute(f"SELECT {self._RECORD_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if values is None:
            raise KeyError(f"no item {item_id} in {self.path}")
        return self._record(values)

    def iter_records(self) -> Iterator[ItemRecord]:
        """Every present file's record, in folder order, one at a time (exports of any size)."""
        cursor = self._db.cursor()
        cursor.execute(f"SELECT {self._RECORD_COLUMNS} FROM items WHERE present = 1 ORDER BY id")
        while True:
            chunk = cursor.fetchmany(256)
            if not chunk:
                return
            for values in chunk:
                yield self._record(values)

    def counts(self) -> StoreCounts:
        total, done, errors, pending, reviewed = self._db.execute(
            "SELECT count(*), "
            "coalesce(sum(state = 'done'), 0), coalesce(sum(state = 'error'), 0), "
            "coalesce(sum(state IN ('pending', 'check')), 0), coalesce(sum(review IS NOT NULL), 0) "
            "FROM items WHERE present = 1"
        ).fetchone()
        return StoreCounts(total, done, errors, pending, reviewed)

    def map_path(self, sha256: str) -> Path:
        """Where an item's reduced attention maps are kept (``station.review.maps``)."""
        return self.maps_dir / sha256[:2] / f"{sha256}.npz"
