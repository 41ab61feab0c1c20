"""The hash chain that makes edits to the audit log evident, and its verification.

Exactly what is hashed, so that anyone can recompute it from an export::

    hash(entry n) = sha256_hex( hash(entry n-1) + canonical_json(record n) )   (UTF-8 bytes)
    hash(entry 0) = GENESIS_HASH = "0" * 64

``record n`` is the entry with every field except ``prev_hash`` and ``hash``: its ``id`` (the
sequence number), ``time_utc``, ``utc_offset``, station, operator, action, app version and all
the inspection fields (see ``AuditEntry``), including fields that are null. ``canonical_json``
is ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)``. The ``payload`` column stores exactly that text.

Each entry also names its station's Ed25519 public key (``signing_key``, hashed) and carries a
signature over its head, ``keys.head_message(id, hash)`` (not hashed). A station's first signed
entry fixes its key on the log; entries written before signing (schema 1) stay unsigned and are
covered by the first signed head after them.

What ``verify`` catches, and where it points (the first entry at which the log goes wrong); none
of it needs the private key:

* an edited entry (payload or hash): that entry, "contents do not match its hash";
* an edited index column (material, verdict, station, ...): that entry;
* a deleted entry: the missing id; reordered or renumbered entries: the first displaced one;
* an inserted entry, or a rewrite from entry n on with freshly computed hashes: the first
  entry whose signature does not match its (new) hash, or that has none;
* an appended forgery with a valid hash: it has no valid signature by its station's key, or it
  names a second key for a station that already has one;
* a deleted tail, when the database still remembers it: SQLite's ``sqlite_sequence``;
* a deleted tail or a rewritten log, when this station signed more than the log now holds: the
  station's own record of its last signed head (``keys.HeadAnchors``, beside the key);
* anything that does not lead to ``--expect-head`` (a head written down elsewhere);
* a missing, changed or extra trigger, index or column (``verify`` fails, naming it).

What no check of the log alone can reveal, and needs an anchor kept outside it: a tail cut off
together with its ``sqlite_sequence`` trace (or on PostgreSQL, where there is none), verified
somewhere other than the station that signed it; and a log made anew from entry 1 with a fresh
key. Every prefix of a signed log is a signed log. Write down the head that ``verify`` prints
(and exports carry), and the stations' key fingerprints, and check with ``--expect-head``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

from station.audit import db, keys

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
    reason: str  # why the first bad entry is bad (or what is wrong with the schema); "" when ok
    head_hash: str  # hash of the last good entry (GENESIS_HASH for an empty log): record it to anchor the log
    warnings: tuple[str, ...] = ()
    head_id: int = 0  # id of the last good entry
    head_signature: str | None = None  # its signature, by head_station's key
    head_station: str | None = None
    station_keys: dict[str, str] = field(default_factory=dict)  # station id -> Ed25519 public key (hex)
    problems: tuple[str, ...] = ()  # schema problems; any makes ok False
    location: str = ""

    @property
    def anchor(self) -> str:
        """The head as ``--expect-head`` takes it: ``ID:HASH``."""
        return f"{self.head_id}:{self.head_hash}"

    def describe(self) -> str:
        if self.ok:
            lines = [f"OK: {self.n_entries} entries, hash chain intact, every signature valid, head {self.anchor}"]
        elif self.first_bad_id is not None:
            lines = [
                f"FAILED at entry {self.first_bad_id}: {self.reason} "
                f"({self.n_verified} of {self.n_entries} stored entries verified before it)"
            ]
        else:
            lines = [f"FAILED: {self.reason} (the {self.n_entries} entries themselves verified)"]
        lines += [f"FAILED: {p}" for p in self.problems if p != self.reason]
        if self.head_signature:
            lines.append(f"head signed by station {self.head_station} (signature {self.head_signature[:32]}…; in full in exports)")
        lines += [
            f"signing key of station {station}: {keys.fingerprint(public)} ({public})"
            for station, public in sorted(self.station_keys.items())
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def verify(
    location: Path | str | None = None, *, expect_head: str | None = None, station_record: bool = True
) -> VerifyResult:
    """Check the audit log at ``location`` (a path or ``postgresql://`` URL; default: the station's log), read-only.

    ``expect_head`` (``ID:HASH`` or ``HASH``) must be in the verified log; ``station_record``
    checks the heads this station signed on this log (``keys.HeadAnchors``). Raises
    ``AuditError`` when the log is missing, unreachable or is not an audit log.
    """
    from station.audit.backend import configured_location, open_backend

    backend = open_backend(configured_location() if location is None else location, readonly=True)
    try:
        problems = tuple(backend.schema_problems())
        # One read transaction: a writer appending meanwhile does not shift what we see.
        with backend.transaction() as tx:
            n_entries = tx.execute("SELECT count(*) FROM entries")[0][0]
            sequence_max = backend.sequence_max(tx)
            with closing(tx.stream(f"SELECT {backend.select_columns()} FROM entries ORDER BY id")) as rows:
                result = verify_rows(rows, n_entries, sequence_max)
            result = replace(result, location=backend.location)
            if result.ok:
                result = _check_anchors(tx, backend.location, result, expect_head, station_record)
    finally:
        backend.close()
    if problems:
        reason = result.reason or problems[0]
        result = replace(result, ok=False, reason=reason, problems=problems)
    return result


def _hash_at(tx, entry_id: int) -> str | None:
    rows = tx.execute("SELECT hash FROM entries WHERE id = ?", (entry_id,))
    return rows[0][0] if rows else None


def _check_anchors(tx, location: str, result: VerifyResult, expect_head: str | None, station_record: bool) -> VerifyResult:
    last_id = result.head_id
    first_hash = _hash_at(tx, 1)

    def bad(entry_id: int, reason: str) -> VerifyResult:
        return replace(result, ok=False, first_bad_id=entry_id, reason=reason)

    if expect_head:
        text = expect_head.strip()
        expected_id, _, expected_hash = text.rpartition(":")
        if len(expected_hash) != 64:
            raise ValueError(f"--expect-head takes ID:HASH or the 64-character HASH, got {expect_head!r}")
        if expected_id:
            stored = _hash_at(tx, int(expected_id))
            if stored is None:
                return bad(last_id + 1, f"the log ends at entry {last_id}, but the head written down is entry "
                           f"{expected_id}: entries {last_id + 1}..{expected_id} were cut off")
            if stored != expected_hash:
                return bad(int(expected_id), f"entry {expected_id} is not the head written down "
                           f"({expected_hash[:16]}…): the log was rewritten")
        elif not tx.execute("SELECT id FROM entries WHERE hash = ?", (expected_hash,)):
            return bad(last_id + 1, f"the head written down ({expected_hash[:16]}…) is not in the log: "
                       f"entries after {last_id} were cut off, or the log was rewritten")
    if not station_record:
        return result
    try:
        record = keys.HeadAnchors()
    except OSError as exc:  # no config folder to read (a read-only home that never had one)
        return replace(result, warnings=(*result.warnings, f"the station's head record cannot be read: {exc}"))
    for anchor in record.for_log(location, first_hash):
        signed = f"this station signed entry {anchor.entry_id} of it on {anchor.time_utc} (its record {record.path})"
        if anchor.first_hash != first_hash:
            return bad(1, f"this is not the chain this station wrote at {location}: entry 1 differs, and {signed}")
        stored = _hash_at(tx, anchor.entry_id)
        if stored is None:
            return bad(last_id + 1, f"entries {last_id + 1}..{anchor.entry_id} were cut off the end of the log: "
                       f"{signed} (a copy taken before then ends earlier too)")
        if stored != anchor.head_hash:
            return bad(anchor.entry_id, f"entry {anchor.entry_id} is not the one {signed}: the log was rewritten")
    return result


def verify_rows(rows: Iterable[tuple], n_entries: int, sequence_max: int | None = None) -> VerifyResult:
    """Check rows in ``db.COLUMNS`` order (``id, time_utc, ..., payload, prev_hash, hash, signature``), sorted by id."""
    expected_id = 1
    prev_hash = GENESIS_HASH
    n_verified = 0
    n_unsigned = 0
    head_signature: str | None = None
    head_station: str | None = None
    station_keys: dict[str, str] = {}

    def result(ok: bool, entry_id: int | None = None, reason: str = "", warnings: tuple[str, ...] = ()) -> VerifyResult:
        return VerifyResult(
            ok, n_entries, n_verified, entry_id, reason, prev_hash, warnings,
            head_id=expected_id - 1, head_signature=head_signature, head_station=head_station,
            station_keys=dict(station_keys),
        )

    def bad(entry_id: int, reason: str) -> VerifyResult:
        return result(False, entry_id, reason)

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
        station, public_key = record.get("station_id"), record.get("signing_key")
        if public_key is None:
            if station_keys:
                return bad(entry_id, "it carries no station key, after signing began: it was added without a key")
            n_unsigned += 1
        else:
            pinned = station_keys.setdefault(station, public_key)
            if pinned != public_key:
                return bad(
                    entry_id,
                    f"it names a second signing key for station {station!r} ({_fingerprint(public_key)}; "
                    f"the station's key on this log is {_fingerprint(pinned)}): it was forged",
                )
            if not columns["signature"]:
                return bad(entry_id, f"it has no signature by station {station!r}: it was added without the key")
            if not keys.check_signature(public_key, entry_id, columns["hash"], columns["signature"]):
                return bad(
                    entry_id,
                    f"its signature does not match its hash (station {station!r}, {_fingerprint(public_key)}): "
                    "the log was rewritten from here, or the entry forged, without the station's key",
                )
        prev_hash = columns["hash"]
        head_signature, head_station = columns["signature"], station
        n_verified += 1
        expected_id += 1
    last_id = expected_id - 1
    if sequence_max is not None and sequence_max > last_id:
        return bad(
            last_id + 1,
            f"entries {last_id + 1}..{sequence_max} were deleted from the end of the log "
            f"(the database once held entry {sequence_max})",
        )
    if n_unsigned and not station_keys:
        return result(
            False, 1,
            f"none of its {n_unsigned} entries is signed (a log from before signing, or stripped of its "
            "signatures): its authenticity cannot be checked until this station appends to it",
        )
    warnings = (
        (f"entries 1..{n_unsigned} were written before signing; the signed heads after them cover them",)
        if n_unsigned else ()
    )
    return result(True, warnings=warnings)


def _fingerprint(public_key: object) -> str:
    try:
        return "key " + keys.fingerprint(str(public_key))
    except ValueError:
        return f"a malformed key {public_key!r}"
