"""The audit log: append-only storage, entries, queries, write failures, and the hash chain."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from station.audit import (
    GENESIS_HASH,
    Action,
    AuditEntry,
    AuditError,
    AuditLog,
    AuditWriteError,
    EntryDraft,
    Verdict,
    canonical_json,
    entry_hash,
    verify,
    write_selftest_entry,
)
from station.audit import archive as archive_module
from station.audit.entry import HASHED_FIELDS
from station.audit.log import to_utc_bound
from station.cli import main as station_main


@pytest.fixture(autouse=True)
def station_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STATION_ID", "test-station")
    return tmp_path / "home"


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "log" / "audit.sqlite3"


def _fill(path: Path, n: int = 6) -> list[AuditEntry]:
    """A small realistic session: sign in, classify/verdict pairs, an override."""
    materials = ("plastic", "ceramic", "metallic")
    with AuditLog(path, station_id="lab-1") as log:
        entries = [log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))]
        for i in range(n - 2):
            material = materials[i % 3]
            entries.append(
                log.append(EntryDraft(
                    Action.CLASSIFY,
                    operator_id="jdoe",
                    chip_id=f"C-{i}",
                    lot_id="L7",
                    probabilities={material: 0.8, "other": 0.2},
                    predicted_material=material,
                    models={"cti-small": "a" * 64},
                    thresholds={"uncertain": 0.6},
                ))
            )
        entries.append(
            log.append(EntryDraft(
                Action.OVERRIDE,
                operator_id="asmith",
                chip_id="C-0",
                predicted_material="plastic",
                material="ceramic",
                verdict=Verdict.OVERRIDE,
                reason="ceramic lid under the label",
            ))
        )
    return entries


def _raw(path: Path) -> sqlite3.Connection:
    """A connection as a tamperer would use it: the append-only triggers dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    for name in ("entries_no_update", "entries_no_delete", "entries_next_id"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    return conn


def _recreate_triggers(path: Path) -> None:
    """What a careful tamperer does last: put the append-only triggers back exactly as they were."""
    from station.audit.db import _SCHEMA, _split_statements

    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _split_statements(_SCHEMA):
        if statement.startswith("CREATE TRIGGER"):
            conn.execute(statement)
    conn.close()


# -- entries -------------------------------------------------------------------------------------


def test_append_returns_the_committed_entry_with_every_field(db_path):
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    with AuditLog(db_path, station_id="lab-1") as log:
        entry = log.append(EntryDraft(
            Action.CLASSIFY,
            operator_id="jdoe",
            chip_id="C-17",
            lot_id="L-3",
            serial_id="S-99",
            recipe="IC package (demo)",
            models={"cti-small": "ab" * 32, "wbam-ffem-nano": "cd" * 32},
            thresholds={"uncertain": 0.6, "defect_score": np.float32(0.25)},
            image=image,
            probabilities={"plastic": np.float64(0.7), "ceramic": 0.2, "metallic": 0.1},
            predicted_material="plastic",
            uncertain=False,
            defects=[{"class": "crack", "score": 0.9, "box": np.array([1.5, 2.0, 10.0, 12.0])}],
            decap_method="fuming nitric acid",
            details={"note": "µ-scale 0.5 µm/px"},
        ))
        assert entry.id == 1 and entry.prev_hash == GENESIS_HASH and len(entry.hash) == 64
        assert entry.station_id == "lab-1" and entry.app_version
        assert entry.material == "plastic"  # the material of record defaults to the prediction
        assert entry.thresholds["defect_score"] == 0.25 and isinstance(entry.probabilities["plastic"], float)
        assert entry.defects[0]["box"] == [1.5, 2.0, 10.0, 12.0]
        assert entry.time.tzinfo is not None and entry.time_utc.endswith("+00:00")
        assert abs(entry.time - datetime.now(timezone.utc)) < timedelta(seconds=30)
        assert re.fullmatch(r"[+-]\d\d:\d\d", entry.utc_offset)
        assert log.get(1) == entry
        assert entry.image_path.startswith("archive/") and log.image_status(entry) == "ok"


def test_hash_covers_every_field_but_the_hashes(db_path):
    entries = _fill(db_path)
    assert set(HASHED_FIELDS) == set(AuditEntry.__dataclass_fields__) - {"prev_hash", "hash", "signature"}
    assert {"id", "time_utc", "utc_offset", "operator_id"} <= set(HASHED_FIELDS)
    prev = GENESIS_HASH
    for entry in entries:
        assert entry.prev_hash == prev
        assert entry.hash == entry_hash(prev, canonical_json(entry.record()))
        prev = entry.hash
    stored = sqlite3.connect(db_path).execute("SELECT payload FROM entries WHERE id = 2").fetchone()[0]
    assert stored == canonical_json(entries[1].record())


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is POSIX only")
def test_local_offset_is_recorded(db_path, monkeypatch):
    monkeypatch.setenv("TZ", "IST-05:30")  # POSIX: 5 h 30 min east of UTC, no tz database needed
    time.tzset()
    try:
        with AuditLog(db_path, station_id="s") as log:
            entry = log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        assert entry.utc_offset == "+05:30"
        assert entry.local_time.utcoffset() == timedelta(hours=5, minutes=30)
        assert entry.local_time == entry.time
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_station_id_defaults_to_the_settings(db_path):
    with AuditLog(db_path) as log:
        assert log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe")).station_id == "test-station"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(action=Action.OVERRIDE, material="ceramic", verdict="override"), "reason"),
        (dict(action=Action.OVERRIDE, material="ceramic", verdict="override", reason="   "), "reason"),
        (dict(action=Action.VERDICT, material="ceramic", verdict=Verdict.OVERRIDE), "reason"),
        (dict(action=Action.OVERRIDE, verdict="override", reason="lid", predicted_material="plastic"), "material"),
        (dict(action=Action.CORRECTION, reason="typo"), "refers_to"),
        (dict(action=Action.CORRECTION, refers_to=1), "reason"),
        (dict(action=Action.CORRECTION, refers_to=99, reason="typo"), "no audit entry 99"),
        (dict(action="LAUNCH_ROCKET"), "unknown audit action"),
        (dict(action=Action.VERDICT, verdict="maybe"), "unknown verdict"),
        (dict(action=Action.SIGN_IN, operator_id=""), "operator"),
        (dict(action=Action.CLASSIFY, probabilities={"plastic": float("nan")}), "probabilities"),
        (dict(action=Action.CLASSIFY, details={"when": object()}), "details"),
    ],
)
def test_invalid_entries_are_refused_and_nothing_is_written(db_path, kwargs, message):
    with AuditLog(db_path, station_id="s") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        kwargs = {"operator_id": "jdoe", **kwargs}
        with pytest.raises(ValueError, match=message):
            log.append(EntryDraft(kwargs.pop("action"), **kwargs))
        assert log.count() == 1
        assert log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe")).id == 2  # no gap, chain intact
    assert verify(db_path).ok


def test_an_override_of_findings_without_a_material_call_needs_only_its_reason(db_path):
    with AuditLog(db_path) as log:
        entry = log.append(EntryDraft(Action.OVERRIDE, operator_id="jdoe", verdict=Verdict.OVERRIDE, reason="dust, not a short",
                           defects=[{"class": "short", "score": 0.7, "box": [1, 2, 3, 4]}]))
    assert entry.material is None and entry.reason == "dust, not a short"
    assert verify(db_path).ok


def test_a_correction_refers_to_the_earlier_entry(db_path):
    _fill(db_path)
    with AuditLog(db_path) as log:
        fix = log.append(EntryDraft(Action.CORRECTION, operator_id="jdoe", refers_to=2, reason="wrong chip scanned", chip_id="C-9"))
        assert fix.refers_to == 2 and log.get(2).chip_id == "C-0"  # the original is untouched
    assert verify(db_path).ok


def test_entries_cannot_be_updated_or_deleted(db_path):
    _fill(db_path)
    conn = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE entries SET verdict = 'accept' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM entries WHERE id = 6")
    row = conn.execute("SELECT * FROM entries WHERE id = 2").fetchone()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute(f"INSERT OR REPLACE INTO entries VALUES ({', '.join('?' * len(row))})", row)
    conn.close()
    assert verify(db_path).ok


def test_pragmas_and_nothing_opens_at_import(db_path, tmp_path):
    with AuditLog(db_path, station_id="s") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        conn = log._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    home = tmp_path / "import-home"
    code = (
        "import sys, station.audit, station.audit.cli, station.audit.export; "
        "assert not any(m.startswith('PySide6') for m in sys.modules), 'the audit core imported Qt'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "STATION_HOME": str(home)})
    assert not home.exists()


def test_query_filters(db_path):
    entries = _fill(db_path, n=8)
    with AuditLog(db_path, readonly=True) as log:
        assert [e.id for e in log.query()] == [e.id for e in entries]
        assert [e.id for e in log.query(operator="asmith")] == [entries[-1].id]
        assert {e.id for e in log.query(chip="C-0")} == {2, entries[-1].id}
        assert all(e.material == "ceramic" for e in log.query(material="ceramic"))
        assert len(log.query(material="ceramic")) == 3  # two classified ceramic + the override
        assert [e.action for e in log.query(verdict=Verdict.OVERRIDE)] == ["OVERRIDE"]
        assert len(log.query(action=Action.CLASSIFY)) == 6
        assert [e.id for e in log.query(action="CLASSIFY", limit=2, newest_first=True)] == [7, 6]
        today = entries[0].local_time.date()
        assert len(log.query(from_=today, to=today)) == 8
        assert len(log.query(from_=str(today), to=str(today))) == 8
        assert log.query(to=today - timedelta(days=1)) == []
        assert log.query(from_=today + timedelta(days=1)) == []
        assert [e.id for e in log.query(from_=entries[3].time, to=entries[4].time)] == [4, 5]
        with pytest.raises(KeyError, match="no audit entry 99"):
            log.get(99)
        with pytest.raises(AuditWriteError, match="read-only"):
            log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe"))


def test_time_bounds():
    midnight_local = datetime(2026, 5, 9).astimezone()
    assert to_utc_bound("2026-05-09", end=False) == (midnight_local.astimezone(timezone.utc).isoformat(timespec="microseconds"), False)
    end, exclusive = to_utc_bound(date(2026, 5, 9), end=True)
    assert exclusive and end == (midnight_local + timedelta(days=1)).astimezone(timezone.utc).isoformat(timespec="microseconds")
    assert to_utc_bound("2026-05-09T10:00:00Z", end=True) == ("2026-05-09T10:00:00.000000+00:00", False)
    with pytest.raises(ValueError, match="not a date"):
        to_utc_bound("yesterday", end=False)


def test_concurrent_writers_form_one_chain(db_path):
    AuditLog(db_path, station_id="s").open().close()

    def writer(name: str) -> None:
        with AuditLog(db_path, station_id=name) as log:
            for _ in range(15):
                log.append(EntryDraft(Action.CLASSIFY, operator_id=name))

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = verify(db_path)
    assert result.ok and result.n_entries == 45, result.describe()


def test_selftest_entry(db_path):
    with AuditLog(db_path, station_id="s") as log:
        entry = write_selftest_entry(log)
        again = write_selftest_entry(log)
    assert entry.action == "SELFTEST" and again.id == entry.id + 1
    assert again.image_path == entry.image_path  # content-addressed: stored once
    assert verify(db_path).ok


def test_default_log_lives_under_station_home(station_home):
    with AuditLog() as log:
        entry = write_selftest_entry(log)
        assert log.path == station_home / "data" / "audit.sqlite3"
    assert log.image_file(entry.image_path).parent.parent == station_home / "data" / "archive"
    assert verify().ok


# -- archive ---------------------------------------------------------------------------------------


def test_archive_is_lossless_and_content_addressed(db_path):
    import cv2

    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    with AuditLog(db_path, station_id="s") as log:
        sha, path = log.archive_image(image)
        assert log.archive_image(image.copy()) == (sha, path)
    assert path == db_path.parent / "archive" / sha[:2] / f"{sha}.png"
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1], image)
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ValueError, match=r"HxWx3 RGB uint8.*\(30, 40\)"):
        archive_module.archive_image(image[..., 0], path.parent)
    with pytest.raises(ValueError, match="float"):
        archive_module.archive_image(image.astype(float), path.parent)


def test_archive_on_a_full_disk_leaves_nothing(db_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_module.os, "fsync", full_disk)
    image = np.zeros((8, 8, 3), np.uint8)
    with AuditLog(db_path, station_id="s") as log:
        with pytest.raises(AuditWriteError, match="disk is full"):
            log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", image=image))
        assert log.count() == 0
    archive_dir = db_path.parent / "archive"
    assert not [p for p in archive_dir.rglob("*") if p.is_file()]


# -- write failures --------------------------------------------------------------------------------


def test_full_disk_blocks_the_record_and_leaves_no_trace(db_path):
    with AuditLog(db_path, station_id="s") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        conn = log._connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite reports SQLITE_FULL past this size
        with pytest.raises(AuditWriteError, match="disk is full") as failure:
            log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", details={"blob": "x" * 200_000}))
        assert str(db_path) in str(failure.value)
        assert log.count() == 1
        assert log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe")).id == 2  # fresh connection, no limit
    assert verify(db_path).ok


def test_locked_log_raises_after_the_timeout(db_path):
    AuditLog(db_path, station_id="s").open().close()
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with AuditLog(db_path, station_id="s", busy_timeout_s=0.2) as log:
            with pytest.raises(AuditWriteError, match="locked by another writer"):
                log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with AuditLog(db_path, station_id="s") as log:
        assert log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe")).id == 1


_READ_ONLY_CHILD = r"""
import json, os, sys
from pathlib import Path
import cv2
import numpy as np
from station.audit import Action, AuditLog, AuditWriteError, EntryDraft, verify

if os.geteuid() == 0:
    # chmod does not bind root: continue as "nobody", everything this script needs already imported
    # (the interpreter's own files may sit in a folder "nobody" cannot read).
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
base = Path(sys.argv[1])
data, fresh = base / "data", base / "fresh"
with AuditLog(data / "audit.sqlite3", station_id="s") as log:
    log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
(data / "archive").mkdir()
fresh.mkdir()
for folder in (data, data / "archive", fresh):
    folder.chmod(0o555)
(data / "audit.sqlite3").chmod(0o444)
errors = {}
for name, write in {
    "append": lambda: AuditLog(data / "audit.sqlite3", station_id="s").append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe")),
    "archive": lambda: AuditLog(data / "audit.sqlite3", station_id="s").archive_image(np.zeros((4, 4, 3), np.uint8)),
    "create": lambda: AuditLog(fresh / "audit.sqlite3", station_id="s").append(EntryDraft(Action.SIGN_IN, operator_id="jdoe")),
}.items():
    try:
        write()
        errors[name] = None
    except AuditWriteError as exc:
        errors[name] = str(exc)
result = verify(data / "audit.sqlite3")
print(json.dumps({"errors": errors, "ok": result.ok, "n": result.n_entries}))
"""


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX file modes and users: not on Windows")
def test_read_only_data_dir_raises_a_clear_error(tmp_path):
    # chmod does not bind root, so as root the check runs as the unprivileged user "nobody"
    # in a folder it can reach.
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="audit-ro-")) if as_root else tmp_path / "ro"
    base.mkdir(exist_ok=True)
    try:
        if as_root:
            os.chown(base, 65534, 65534)
        env = {**os.environ, "STATION_HOME": str(base / "home"), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [sys.executable, "-c", _READ_ONLY_CHILD, str(base)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
    finally:
        for folder in base.rglob("*"):
            if folder.is_dir():
                folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
    errors = report["errors"]
    assert errors["append"] and "read-only" in errors["append"] and "audit.sqlite3" in errors["append"]
    assert errors["archive"] and "read-only" in errors["archive"]
    assert errors["create"] and "read-only" in errors["create"]  # the folder it would be created in
    assert report["ok"] and report["n"] == 1  # the log is still readable and intact


def test_missing_or_foreign_database(tmp_path):
    with pytest.raises(AuditError, match="no audit log at"):
        verify(tmp_path / "nope.sqlite3")
    foreign = tmp_path / "foreign.sqlite3"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(AuditError, match="not a station audit log"):
        verify(foreign)
    with pytest.raises(AuditWriteError, match="not a station audit log"):
        AuditLog(foreign, station_id="s").append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))


# -- tamper evidence -------------------------------------------------------------------------------


def _tamper_and_verify(path: Path, sql: list[str], params: list[tuple] | None = None):
    conn = _raw(path)
    for statement, args in zip(sql, params or [()] * len(sql)):
        conn.execute(statement, args)
    conn.close()
    return verify(path)


def test_intact_log_verifies(db_path):
    entries = _fill(db_path)
    result = verify(db_path)
    assert result.ok and result.n_entries == result.n_verified == 6 and result.first_bad_id is None
    assert result.head_hash == entries[-1].hash and not result.warnings


def test_edited_payload_is_named(db_path):
    _fill(db_path)
    payload = json.loads(sqlite3.connect(db_path).execute("SELECT payload FROM entries WHERE id = 3").fetchone()[0])
    payload["probabilities"]["other"] = 0.01
    result = _tamper_and_verify(db_path, ["UPDATE entries SET payload = ? WHERE id = 3"], [(canonical_json(payload),)])
    assert not result.ok and result.first_bad_id == 3 and "edited" in result.reason
    assert result.n_verified == 2
    assert any("trigger entries_no_update is missing" in p for p in result.problems)


def test_edited_and_rehashed_entry_is_named_by_its_signature(db_path):
    entries = _fill(db_path)
    record = entries[2].record() | {"operator_id": "mallory"}
    forged_hash = entry_hash(entries[1].hash, canonical_json(record))
    result = _tamper_and_verify(
        db_path,
        ["UPDATE entries SET payload = ?, operator_id = 'mallory', hash = ? WHERE id = 3"],
        [(canonical_json(record), forged_hash)],
    )
    assert not result.ok and result.first_bad_id == 3 and "signature does not match" in result.reason


def test_edited_index_column_is_named(db_path):
    _fill(db_path)
    result = _tamper_and_verify(db_path, ["UPDATE entries SET material = 'metallic' WHERE id = 6"])
    assert not result.ok and result.first_bad_id == 6 and "material" in result.reason


def test_deleted_entry_is_named(db_path):
    _fill(db_path)
    result = _tamper_and_verify(db_path, ["DELETE FROM entries WHERE id = 3"])
    assert not result.ok and result.first_bad_id == 3 and "missing" in result.reason


def test_deleted_tail_is_named(db_path):
    _fill(db_path)
    result = _tamper_and_verify(db_path, ["DELETE FROM entries WHERE id >= 5"])
    assert not result.ok and result.first_bad_id == 5 and "end of the log" in result.reason


def test_truncation_hidden_from_sqlite_sequence_needs_an_anchor(db_path):
    entries = _fill(db_path)
    anchored = verify(db_path).anchor
    result = _tamper_and_verify(
        db_path, ["DELETE FROM entries WHERE id = 6", "UPDATE sqlite_sequence SET seq = 5 WHERE name = 'entries'"]
    )
    # the station that signed entry 6 remembers it ...
    assert not result.ok and result.first_bad_id == 6 and "cut off" in result.reason and "signed entry 6" in result.reason
    # ... anyone else needs the head written down: the chain of signed heads alone cannot see it
    _recreate_triggers(db_path)
    elsewhere = verify(db_path, station_record=False)
    assert elsewhere.ok and elsewhere.head_hash != entries[-1].hash
    for expected in (anchored, entries[-1].hash):
        result = verify(db_path, station_record=False, expect_head=expected)
        assert not result.ok and result.first_bad_id == 6, expected


def test_reordered_entries_are_named(db_path):
    _fill(db_path)
    columns = "time_utc, action, operator_id, chip_id, material, verdict, refers_to, payload, prev_hash, hash"
    conn = sqlite3.connect(db_path)
    row3, row4 = (conn.execute(f"SELECT {columns} FROM entries WHERE id = ?", (i,)).fetchone() for i in (3, 4))
    conn.close()
    assignments = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
    result = _tamper_and_verify(
        db_path,
        [
            "UPDATE entries SET hash = ? WHERE id = 4",  # hash is UNIQUE: free it first
            f"UPDATE entries SET {assignments} WHERE id = 3",
            f"UPDATE entries SET {assignments} WHERE id = 4",
        ],
        [("0" * 63 + "1",), (*row4,), (*row3,)],
    )
    assert not result.ok and result.first_bad_id == 3 and "reordered" in result.reason


def test_renumbered_entries_are_named(db_path):
    _fill(db_path)
    result = _tamper_and_verify(
        db_path,
        [
            "UPDATE entries SET id = 100 WHERE id = 4",
            "UPDATE entries SET id = 4 WHERE id = 5",
            "UPDATE entries SET id = 5 WHERE id = 100",
        ],
    )
    assert not result.ok and result.first_bad_id == 4 and "reordered" in result.reason


def _insert_after(path: Path, after_id: int, forge_valid_hash: bool) -> None:
    conn = _raw(path)
    last = conn.execute("SELECT max(id) FROM entries").fetchone()[0]
    for entry_id in range(last, after_id, -1):  # make room, highest first
        conn.execute("UPDATE entries SET id = id + 1 WHERE id = ?", (entry_id,))
    prev_hash = conn.execute("SELECT hash FROM entries WHERE id = ?", (after_id,)).fetchone()[0]
    record = json.loads(conn.execute("SELECT payload FROM entries WHERE id = ?", (after_id,)).fetchone()[0])
    record |= {"id": after_id + 1, "verdict": "accept", "operator_id": "mallory"}
    payload = canonical_json(record)
    digest = entry_hash(prev_hash, payload) if forge_valid_hash else "f" * 64
    conn.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (after_id + 1, record["time_utc"], record["action"], "mallory", record["chip_id"], record["material"],
         "accept", record["refers_to"], payload, prev_hash, digest, record["station_id"], None),
    )
    conn.close()


def test_inserted_entry_is_named(db_path):
    _fill(db_path)
    _insert_after(db_path, 3, forge_valid_hash=False)
    result = verify(db_path)
    assert not result.ok and result.first_bad_id == 4 and "edited" in result.reason


def test_inserted_entry_with_a_valid_link_is_named_by_its_missing_signature(db_path):
    _fill(db_path)
    _insert_after(db_path, 3, forge_valid_hash=True)
    result = verify(db_path)
    assert not result.ok and result.first_bad_id == 4 and "no signature" in result.reason


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_verify_exit_codes(db_path, tmp_path, capsys):
    _fill(db_path)
    assert station_main(["audit", "verify", "--db", str(db_path), "--images"]) == 0
    assert "OK: 6 entries" in capsys.readouterr().out
    _tamper_and_verify(db_path, ["UPDATE entries SET payload = replace(payload, 'jdoe', 'mallory') WHERE id = 4"])
    assert station_main(["audit", "verify", "--db", str(db_path)]) == 1
    assert "FAILED at entry 4" in capsys.readouterr().out
    assert station_main(["audit", "verify", "--db", str(tmp_path / "missing.sqlite3")]) == 2
    assert "no audit log at" in capsys.readouterr().err


def test_cli_verify_expect_head_and_the_station_record(db_path, capsys):
    entries = _fill(db_path)
    assert station_main(["audit", "verify", "--db", str(db_path), "--expect-head", f"6:{entries[-1].hash}"]) == 0
    assert f"head 6:{entries[-1].hash}" in capsys.readouterr().out
    assert station_main(["audit", "verify", "--db", str(db_path), "--expect-head", f"6:{'e' * 64}"]) == 1
    assert "FAILED at entry 6" in capsys.readouterr().out
    assert station_main(["audit", "verify", "--db", str(db_path), "--expect-head", "nonsense"]) == 2
    _tamper_and_verify(db_path, ["DELETE FROM entries WHERE id = 6", "DELETE FROM sqlite_sequence"])
    _recreate_triggers(db_path)
    assert station_main(["audit", "verify", "--db", str(db_path)]) == 1
    assert "FAILED at entry 6: entries 6..6 were cut off" in capsys.readouterr().out
    assert station_main(["audit", "verify", "--db", str(db_path), "--no-station-record"]) == 0


def test_cli_verify_images_reports_an_altered_image(db_path, capsys):
    with AuditLog(db_path, station_id="s") as log:
        entry = log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", image=np.zeros((8, 8, 3), np.uint8)))
        image = log.image_file(entry.image_path)
    image.chmod(0o644)
    image.write_bytes(image.read_bytes() + b"\0")
    assert station_main(["audit", "verify", "--db", str(db_path), "--images"]) == 1
    assert "entry 1: image altered" in capsys.readouterr().out


def test_cli_show_and_list(db_path, capsys):
    _fill(db_path)
    assert station_main(["audit", "show", "6", "--db", str(db_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reason"] == "ceramic lid under the label" and shown["id"] == 6
    assert station_main(["audit", "show", "60", "--db", str(db_path)]) == 1
    assert station_main(["audit", "list", "--db", str(db_path), "--operator", "asmith"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "OVERRIDE" in lines[0]
