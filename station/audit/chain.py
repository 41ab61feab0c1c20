"""The hash chain that makes edits to the audit log evident, and its verification.

Exactly what is hashed, so that anyone can recompute it from an export::

    hash(entry n) = sha256_hex( hash(entry n-1) + canonical_json(record n) )   (UTF-8 bytes)
    hash(entry 0) = GENESIS_HASH = "0" * 64

``record n`` is the entry with every field except ``prev_hash`` and ``hash``: its ``id`` (the
sequence number), ``time_utc``, ``utc_offset``, station, operator, action, app version and all
the inspection fields (see ``AuditEntry``), including fields that are null. ``canonical_json``
is ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)``. The ``payload`` column stores exactly that text.

What ``verify`` catches, and where it points (the first entry at which the chain breaks):

* an edited entry (payload or hash): that entry, "contents do not match its hash";
* an edited index column (material, verdict, ...): that entry;
* a deleted entry: the missing id; a deleted tail: the first missing id (from ``sqlite_sequence``);
* reordered entries (payloads swapped or ids renumbered): the first displaced entry;
* an inserted entry: the inserted entry if its hash is not a valid link, otherwise the entry
  after it, whose ``prev_hash`` no longer matches.

A chain cannot, on its own, reveal a tail that was cut off *and* erased from sqlite_sequence, or
a log rewritten from some point on with freshly computed hashes: write down the head hash that
``station audit verify`` prints (it is also in every export) to anchor the log.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

from station.audit import db
from station.audit.entry import AuditError

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` that is hashed (see the module docstring)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} cannot be stored in the audit log (not JSON-serialisable)")


def entry_hash(prev_hash: str, payload_json: str) -> str:
    return hashlib.sha256((prev_hash + payload_json).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    n_entries: int  # entries stored
    n_verified: int  # entries checked good before the first bad one (all of them when ok)
    first_bad_id: int | None
    reason: str  # why the first bad entry is bad; "" when ok
    head_hash: str  # hash of the last good entry (GENESIS_HASH for an empty log): record it to anchor the log
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.ok:
            text = f"OK: {self.n_entries} entries, hash chain intact, head hash {self.head_hash}"
        else:
            text = (
                f"FAILED at entry {self.first_bad_id}: {self.reason} "
                f"({self.n_verified} of {self.n_entries} stored entries verified before it)"
            )
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])


def verify(path: Path | None = None) -> VerifyResult:
    """Recompute the chain of the audit log at ``path`` (default: the station's log), read-only.

    Raises ``AuditError`` when the file is missing or is not an audit log.
    """
    if path is None:
        from station import paths

        path = paths.audit_db_path()
    conn = db.connect_reader(Path(path))
    try:
        # One read transaction: a writer appending meanwhile does not shift what we see.
        conn.execute("BEGIN")
        n_entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        sequence_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        rows = conn.execute(f"SELECT {', '.join(db.COLUMNS)} FROM entries ORDER BY id")
        result = verify_rows(rows, n_entries, sequence_row[0] if sequence_row else None)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise AuditError(f"cannot read the audit log {path}: {exc}") from exc
    finally:
        conn.close()
    missing = [name for name in db.TRIGGERS if name not in triggers]
    if missing:
        warning = f"the append-only triggers {', '.join(missing)} are missing: someone altered the schema"
        result = replace(result, warnings=(*result.warnings, warning))
    return result


def verify_rows(rows: Iterable[tuple], n_entries: int, sequence_max: int | None = None) -> VerifyResult:
    """Check rows ``(id, time_utc, ..., payload, prev_hash, hash)`` in ``db.COLUMNS`` order, sorted by id."""
    expected_id = 1
    prev_hash = GENESIS_HASH
    n_verified = 0

    def bad(entry_id: int, reason: str) -> VerifyResult:
        return VerifyResult(False, n_entries, n_verified, entry_id, reason, prev_hash)

    for row in rows:
        columns = dict(zip(db.COLUMNS, row))
        entry_id = columns["id"]
        if entry_id != expected_id:
            return bad(
                expected_id,
                f"entry {expected_id} is missing (the next stored entry is {entry_id}): entries were deleted",
            )
        try:
            record = json.loads(columns["payload"])
        except (TypeError, ValueError) as exc:
            return bad(entry_id, f"its payload is not valid JSON ({exc})")
        if not isinstance(record, dict):
            return bad(entry_id, "its payload is not a JSON object")
        if record.get("id") != entry_id:
            return bad(
                entry_id,
                f"row {entry_id} holds the record of entry {record.get('id')!r}: entries were reordered or renumbered",
            )
        if columns["prev_hash"] != prev_hash:
            before = "the genesis hash" if entry_id == 1 else f"the hash of entry {entry_id - 1}"
            return bad(
                entry_id,
                f"its prev_hash does not match {before}: an entry was inserted, removed or edited before it",
            )
        if entry_hash(prev_hash, canonical_json(record)) != columns["hash"]:
            return bad(entry_id, "its contents do not match its hash: the entry was edited")
        for name in db.INDEXED_FIELDS:
            if columns[name] != record.get(name):
                return bad(
                    entry_id,
                    f"column {name}={columns[name]!r} differs from the hashed record ({record.get(name)!r}): "
                    "the index was edited",
                )
        prev_hash = columns["hash"]
        n_verified += 1
        expected_id += 1
    last_id = expected_id - 1
    if sequence_max is not None and sequence_max > last_id:
        return bad(
            last_id + 1,
            f"entries {last_id + 1}..{sequence_max} were deleted from the end of the log "
            f"(the database once held entry {sequence_max})",
        )
    return VerifyResult(True, n_entries, n_verified, None, "", prev_hash)
