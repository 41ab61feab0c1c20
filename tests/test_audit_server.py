"""The signed chain on both backends (local SQLite, a real PostgreSQL server the suite starts):
tampering named at its first bad entry, many writers in one chain, SIGKILL, an unreachable server,
init-server's grants, migrate, and the station's key."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

from station.audit import (
    Action, AuditLog, AuditUnavailableError, AuditWriteError, EntryDraft, Verdict, canonical_json, entry_hash, verify,
)
from station.audit import keys
from station.audit.backend import open_backend
from station.cli import main as station_main

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path):
    """Where the log is: a file, or a fresh lab log on the test server (as the stations' role)."""
    if request.param == "sqlite":
        return tmp_path / "log" / "audit.sqlite3"
    return request.getfixturevalue("lab_database").station_url


def _fill(location, n: int = 6, station_id: str = "lab-1") -> list:
    with AuditLog(location, station_id=station_id) as log:
        entries = [log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))]
        for i in range(n - 2):
            entries.append(log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", chip_id=f"C-{i}",
                                      probabilities={"plastic": 0.8, "ceramic": 0.2}, predicted_material="plastic")))
        entries.append(log.append(EntryDraft(Action.OVERRIDE, operator_id="asmith", chip_id="C-0", predicted_material="plastic",
                                  material="ceramic", verdict=Verdict.OVERRIDE, reason="ceramic lid")))
    return entries


def test_chip_contains_matches_a_part_of_the_id_in_any_case_on_both_backends(location):
    with AuditLog(location, station_id="lab-1") as log:
        for chip in ("LM358-2431", "lm358-2432", "NE555_9", "NE555x9", "100%-A"):
            log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", chip_id=chip))
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        assert [e.chip_id for e in log.query(chip_contains="lm358")] == ["LM358-2431", "lm358-2432"]
        assert [e.chip_id for e in log.query(chip_contains="2431")] == ["LM358-2431"]
        assert [e.chip_id for e in log.query(chip_contains="555_")] == ["NE555_9"]  # "_" is no wildcard
        assert [e.chip_id for e in log.query(chip_contains="0%")] == ["100%-A"]
        assert log.query(chip="LM358") == [] and len(log.query(chip="LM358-2431")) == 1


class Tamperer:
    """Someone with the database and this code but not the station's key (on PostgreSQL: its owner)."""

    def __init__(self, location, request) -> None:
        self.sqlite = not isinstance(location, str)
        if self.sqlite:
            self.conn = sqlite3.connect(location, isolation_level=None)
        else:
            import psycopg

            owner_url = request.getfixturevalue("lab_database").owner_url
            self.conn = psycopg.connect(owner_url, autocommit=True, options="-c search_path=station")

    def execute(self, sql: str, params=()) -> list:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, tuple(params))
        return cursor.fetchall() if cursor.description else []

    def drop_triggers(self) -> None:
        from station.audit import pg

        names = ("entries_no_update", "entries_no_delete", "entries_next_id")
        for name in names if self.sqlite else pg._TRIGGERS:
            self.execute(f"DROP TRIGGER IF EXISTS {name}" + ("" if self.sqlite else " ON station.entries"))

    def recreate_triggers(self) -> None:
        from station.audit import db, pg

        if self.sqlite:
            for statement in db._split_statements(db._SCHEMA):
                if statement.startswith("CREATE TRIGGER"):
                    self.execute(statement)
        else:
            for name, definition in pg._TRIGGERS.items():
                self.execute(f"CREATE TRIGGER {name} {definition}")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def tamper(location, request):
    _fill(location)
    tamperer = Tamperer(location, request)
    tamperer.drop_triggers()
    yield tamperer
    tamperer.close()


def _row(tamper: Tamperer, entry_id: int) -> dict:
    row = tamper.execute("SELECT payload, prev_hash, hash, signature FROM entries WHERE id = ?", (entry_id,))[0]
    return {"record": json.loads(row[0]), "prev_hash": row[1], "hash": row[2], "signature": row[3]}


def _insert(tamper: Tamperer, record: dict, prev_hash: str, digest: str, signature: str | None) -> None:
    tamper.execute(
        "INSERT INTO entries (id, time_utc, action, operator_id, chip_id, material, verdict, refers_to, payload, "
        "prev_hash, hash, station_id, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record["id"], record["time_utc"], record["action"], record["operator_id"], record["chip_id"],
         record["material"], record["verdict"], record["refers_to"], canonical_json(record), prev_hash, digest,
         record["station_id"], signature),
    )


def _rewrite_from(tamper: Tamperer, first: int, change: dict) -> None:
    """Rewrite entries first.. with ``change`` and freshly computed hashes (the old signatures kept)."""
    prev_hash = _row(tamper, first - 1)["hash"]
    last = tamper.execute("SELECT max(id) FROM entries")[0][0]
    for entry_id in range(first, last + 1):
        row = _row(tamper, entry_id)
        record = row["record"] | change
        digest = entry_hash(prev_hash, canonical_json(record))
        tamper.execute("UPDATE entries SET payload = ?, hash = ?, operator_id = ? WHERE id = ?",
                       (canonical_json(record), digest, record["operator_id"], entry_id))
        prev_hash = digest


def _check(location, first_bad: int, *words: str, **options):
    result = verify(location, **options)
    assert not result.ok and result.first_bad_id == first_bad, result.describe()
    for word in words:
        assert word in result.reason, result.describe()
    return result


# -- tamper suite (both backends): each detected, the first bad entry named ------------------------------


def test_edit(tamper, location):
    record = _row(tamper, 3)["record"] | {"chip_id": "C-99"}
    tamper.execute("UPDATE entries SET payload = ? WHERE id = 3", (canonical_json(record),))
    tamper.recreate_triggers()
    _check(location, 3, "edited")


def test_delete_middle(tamper, location):
    tamper.execute("DELETE FROM entries WHERE id = 3")
    tamper.recreate_triggers()
    _check(location, 3, "missing")


def test_delete_tail_with_its_sequence_trace(tamper, location):
    tamper.execute("DELETE FROM entries WHERE id >= 5")
    tamper.recreate_triggers()
    _check(location, 5)  # SQLite: sqlite_sequence; PostgreSQL: this station's head record
    if tamper.sqlite:
        _check(location, 5, "deleted from the end", station_record=False)


def test_delete_tail_without_its_sequence_trace(tamper, location):
    head = verify(location).anchor
    tamper.execute("DELETE FROM entries WHERE id >= 5")
    if tamper.sqlite:
        tamper.execute("UPDATE sqlite_sequence SET seq = 4 WHERE name = 'entries'")
    tamper.recreate_triggers()
    _check(location, 5, "cut off", "signed entry 6")  # the station that signed entry 6 remembers it
    assert verify(location, station_record=False).ok  # anyone else: every prefix of a signed log is signed ...
    _check(location, 5, "cut off", station_record=False, expect_head=head)  # ... unless the head was written down
    _check(location, 5, "not in the log", station_record=False, expect_head=head.split(":")[1])


def test_reorder(tamper, location):
    three, four = _row(tamper, 3), _row(tamper, 4)
    tamper.execute("UPDATE entries SET hash = ? WHERE id = 4", ("0" * 63 + "1",))  # hash is UNIQUE
    for entry_id, row in ((3, four), (4, three)):
        tamper.execute("UPDATE entries SET payload = ?, prev_hash = ?, hash = ?, signature = ?, chip_id = ? WHERE id = ?",
                       (canonical_json(row["record"]), row["prev_hash"], row["hash"], row["signature"],
                        row["record"]["chip_id"], entry_id))
    tamper.recreate_triggers()
    _check(location, 3, "reordered")


def test_insert(tamper, location):
    for entry_id in range(6, 3, -1):  # make room after entry 3, highest first
        tamper.execute("UPDATE entries SET id = id + 1 WHERE id = ?", (entry_id,))
    before = _row(tamper, 3)
    record = before["record"] | {"id": 4, "verdict": "accept", "operator_id": "mallory"}
    _insert(tamper, record, before["hash"], entry_hash(before["hash"], canonical_json(record)), None)
    tamper.recreate_triggers()
    _check(location, 4, "no signature")


def test_append_with_a_valid_hash(tamper, location):
    last = _row(tamper, 6)
    record = last["record"] | {"id": 7, "action": "RELEASE", "verdict": None, "reason": None}
    digest = entry_hash(last["hash"], canonical_json(record))
    _insert(tamper, record, last["hash"], digest, "ab" * 64)  # a signature made up without the key
    tamper.recreate_triggers()
    _check(location, 7, "signature does not match")


def test_append_signed_with_another_key(tamper, location):
    last = _row(tamper, 6)
    forger = keys.StationKey(Ed25519PrivateKey.generate(), Path("forger.pem"))
    record = last["record"] | {"id": 7, "action": "RELEASE", "signing_key": forger.public_key_hex}
    digest = entry_hash(last["hash"], canonical_json(record))
    _insert(tamper, record, last["hash"], digest, forger.sign_head(7, digest))
    tamper.recreate_triggers()
    _check(location, 7, "second signing key")


def test_rewrite_from_n_with_fresh_hashes(tamper, location):
    _rewrite_from(tamper, 3, {"operator_id": "mallory"})
    tamper.recreate_triggers()
    _check(location, 3, "signature does not match", "rewritten")


def test_dropped_triggers_fail_verify(tamper, location, capsys):
    result = verify(location)
    assert not result.ok and result.first_bad_id is None
    assert any("entries_no_update is missing" in p for p in result.problems), result.describe()
    assert station_main(["audit", "verify", "--db", str(location)]) == 1
    assert "FAILED" in capsys.readouterr().out
    tamper.recreate_triggers()
    assert verify(location).ok  # recreated exactly: the schema is the station's again ...


def test_drop_tamper_and_recreate_triggers(tamper, location):
    record = _row(tamper, 4)["record"] | {"material": "metallic"}
    tamper.execute("UPDATE entries SET payload = ?, material = 'metallic' WHERE id = 4", (canonical_json(record),))
    tamper.recreate_triggers()
    result = _check(location, 4, "edited")  # ... but what was done meanwhile is named
    assert not result.problems


def test_schema_change_fails_verify(tamper, location):
    tamper.recreate_triggers()
    tamper.execute("CREATE INDEX entries_sneaky ON entries(payload)")
    result = verify(location)
    assert not result.ok and any("entries_sneaky" in p or "index" in p for p in result.problems), result.describe()


# -- many writers, one chain -------------------------------------------------------------------------------

_APPENDER = r"""
import sys
from pathlib import Path
from station.audit import Action, AuditLog, EntryDraft
location = sys.argv[1] if sys.argv[1].startswith("postgresql://") else Path(sys.argv[1])
with AuditLog(location, station_id=sys.argv[2]) as log:
    for i in range(int(sys.argv[3])):
        log.append(EntryDraft(Action.CLASSIFY, operator_id="op", chip_id=f"{sys.argv[2]}-{i}"))
"""


def test_four_processes_append_one_chain(location, tmp_path):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(location), f"bench-{i}", "250"],
            env={**os.environ, "STATION_HOME": str(tmp_path / f"home-{i}")},  # each bench PC its own key
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()
    result = verify(location)
    assert result.ok and result.n_entries == 1000, result.describe()
    assert sorted(result.station_keys) == [f"bench-{i}" for i in range(4)]
    assert len(set(result.station_keys.values())) == 4
    with AuditLog(location, readonly=True) as log:
        assert {e.chip_id for e in log.query(station="bench-2")} == {f"bench-2-{i}" for i in range(250)}


_WRITER = r"""
import sys
from pathlib import Path
import numpy as np
from station.audit import Action, AuditLog, EntryDraft

location = sys.argv[1] if sys.argv[1].startswith("postgresql://") else Path(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
with AuditLog(location, station_id="crash-test") as log:
    i = 0
    while True:
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) if i % 3 == 0 else None
        entry = log.append(EntryDraft("CLASSIFY", operator_id="op", chip_id=f"C-{i}", image=image,
                                      details={"padding": "x" * int(rng.integers(10, 5000))}))
        sys.stdout.write(f"{entry.id}\n")
        sys.stdout.flush()
        i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")
def test_sigkill_during_appends_loses_no_reported_record(lab_database, tmp_path):
    """The server log; the SQLite log's twin is tests/test_audit_crash.py."""
    location = lab_database.station_url
    env = {**os.environ, "STATION_HOME": str(tmp_path / "home")}
    rng = random.Random(8)
    reported: set[int] = set()
    for kill in range(20):
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, location, str(kill)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            first = writer.stdout.readline()
            assert first.endswith(b"\n"), writer.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.08))
            writer.send_signal(signal.SIGKILL)
            rest = writer.stdout.read()
        finally:
            writer.kill()
            writer.wait()
            writer.stdout.close()
            writer.stderr.close()
        reported.update(int(line) for line in (first + rest).split(b"\n")[:-1])
    result = verify(location)
    assert result.ok, result.describe()
    with AuditLog(location, readonly=True) as log:
        stored = {e.id for e in log.query()}
    assert not reported - stored, f"reported but lost: {sorted(reported - stored)[:10]}"
    assert len(reported) > 20


# -- the server: grants, outages, migrate, CLI ------------------------------------------------------------


def test_station_role_may_only_insert_and_select(lab_database):
    import psycopg

    _fill(lab_database.station_url)
    with psycopg.connect(lab_database.station_url, autocommit=True) as conn:
        for statement in ("UPDATE station.entries SET chip_id = 'x'", "DELETE FROM station.entries",
                          "TRUNCATE station.entries", "DROP TRIGGER entries_no_update ON station.entries",
                          "ALTER TABLE station.entries DISABLE TRIGGER USER"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    import psycopg as pg  # the owner can't either, while the triggers stand

    with pg.connect(lab_database.owner_url, autocommit=True) as conn:
        with pytest.raises(pg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM station.entries WHERE id = 6")
        with pytest.raises(pg.errors.RaiseException, match="append-only"):
            conn.execute("TRUNCATE station.entries")
    assert verify(lab_database.station_url).ok


def test_unreachable_server_says_so_at_once_and_nothing_is_recorded(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once it closes
    url = f"postgresql://bench:pw@127.0.0.1:{port}/lab"
    log = AuditLog(url, station_id="bench-1")
    started = time.monotonic()
    status = log.status()
    assert not status.writable and status.unreachable and "cannot be reached" in status.message
    assert "pw@" not in status.message  # no password in what the window shows
    with pytest.raises(AuditUnavailableError, match="release stays blocked"):
        log.append(EntryDraft(Action.RELEASE, operator_id="jdoe", chip_id="C-1"))
    assert time.monotonic() - started < 10
    assert station_main(["audit", "verify", "--db", url]) == 2


def test_a_dropped_connection_fails_one_append_and_the_next_one_reconnects(lab_database):
    import psycopg

    with AuditLog(lab_database.station_url, station_id="bench-1") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        assert log.status().writable
        with psycopg.connect(lab_database.owner_url, autocommit=True) as owner:
            owner.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'bench'")
        with pytest.raises(AuditUnavailableError):
            log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", chip_id="C-1"))
        assert log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", chip_id="C-1")).id == 2
    result = verify(lab_database.station_url)
    assert result.ok and result.n_entries == 2


def test_init_server_cli_and_the_same_commands_on_the_server(postgres_server, tmp_path, capsys, monkeypatch):
    lab = postgres_server.database("cli")
    monkeypatch.setenv("STATION_AUDIT_PASSWORD", "second-secret")
    assert station_main(["audit", "init-server", lab.owner_url, "--login", "bench2"]) == 0
    out = capsys.readouterr().out
    assert "login role bench2" in out and "owner-secret" not in out
    url = postgres_server.url("bench2", "second-secret", "cli")
    monkeypatch.setenv("STATION_AUDIT_URL", url)  # the station's own log is now the server's
    _fill(None, station_id="bench-7")
    assert station_main(["audit", "verify", "--images"]) == 0
    out = capsys.readouterr().out
    assert "OK: 6 entries" in out and "second-secret" not in out
    assert station_main(["audit", "list", "--station", "bench-7", "--operator", "asmith"]) == 0
    assert "OVERRIDE" in capsys.readouterr().out
    assert station_main(["audit", "show", "6"]) == 0
    assert json.loads(capsys.readouterr().out.split("\nimage:")[0])["station_id"] == "bench-7"
    out_json = tmp_path / "lab.json"
    assert station_main(["audit", "export", "--format", "json", "--out", str(out_json)]) == 0
    document = json.loads(out_json.read_text())
    assert document["signed_head"]["id"] == 6 and document["signed_head"]["station_id"] == "bench-7"
    assert "second-secret" not in out_json.read_text()


def test_migrate_copies_the_chain_and_its_signatures(lab_database, tmp_path, capsys):
    local = tmp_path / "data" / "audit.sqlite3"
    entries = _fill(local, station_id="bench-3")
    assert station_main(["audit", "migrate", "--db", str(local), "--to", lab_database.station_url]) == 0
    assert "copied 6 entries" in capsys.readouterr().out
    result = verify(lab_database.station_url)
    assert result.ok and result.head_hash == entries[-1].hash and result.head_signature == entries[-1].signature
    with AuditLog(lab_database.station_url, station_id="bench-3") as log:  # the station goes on there
        assert log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe")).id == 7
    assert station_main(["audit", "migrate", "--db", str(local), "--to", lab_database.station_url]) == 2
    assert "already has entries" in capsys.readouterr().err
    assert verify(lab_database.station_url).ok


def test_backend_seam_serialises_on_both(location):
    AuditLog(location, station_id="s").open().close()
    backend = open_backend(location)
    try:
        with backend.transaction(lock="seam-test") as tx:
            assert tx.kind == backend.kind
            assert tx.execute("SELECT count(*) FROM entries WHERE station_id = ?", ("nobody",)) == [(0,)]
        with pytest.raises(ValueError), backend.transaction(lock="seam-test") as tx:
            raise ValueError("rolled back")
    finally:
        backend.close()


# -- the station's key ---------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_key_is_created_once_owner_only_and_apart_from_the_data(tmp_path, station_home):
    location = tmp_path / "log" / "audit.sqlite3"
    entries = _fill(location, n=3)
    key_file = station_home / "config" / "keys" / keys.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert not list((tmp_path / "log").rglob("*.pem"))
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert all(e.signing_key == private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() for e in entries)
    result = verify(location)
    assert result.ok and result.station_keys == {"lab-1": entries[0].signing_key}


def test_another_key_for_the_same_station_is_refused(tmp_path):
    location = tmp_path / "audit.sqlite3"
    _fill(location, n=3)
    with AuditLog(location, station_id="lab-1", key_dir=tmp_path / "other-keys") as log:
        with pytest.raises(AuditWriteError, match="restore the station's key file"):
            log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        assert log.count() == 3
    with AuditLog(location, station_id="lab-2", key_dir=tmp_path / "other-keys") as log:
        assert log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe")).id == 4  # a new station id with the new key
    assert verify(location).ok


def test_a_moved_data_folder_still_verifies(tmp_path, capsys):
    data = tmp_path / "data"
    with AuditLog(data / "audit.sqlite3", station_id="lab-1") as log:
        entry = log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", image=np.full((8, 8, 3), 7, np.uint8)))
    assert not Path(entry.image_path).is_absolute()
    moved = tmp_path / "elsewhere" / "data"
    moved.parent.mkdir()
    data.rename(moved)
    assert station_main(["audit", "verify", "--db", str(moved / "audit.sqlite3"), "--images"]) == 0
    assert "1 of 1 archived images match" in capsys.readouterr().out


def test_a_schema_1_log_is_upgraded_and_then_signed(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("""
        CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, time_utc TEXT NOT NULL, action TEXT NOT NULL,
            operator_id TEXT NOT NULL, chip_id TEXT, material TEXT, verdict TEXT,
            refers_to INTEGER REFERENCES entries(id), payload TEXT NOT NULL,
            prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64), hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64));
        CREATE INDEX entries_time ON entries(time_utc);
        CREATE INDEX entries_action ON entries(action);
        CREATE INDEX entries_operator ON entries(operator_id);
        CREATE INDEX entries_chip ON entries(chip_id);
        CREATE INDEX entries_material ON entries(material);
        CREATE INDEX entries_verdict ON entries(verdict);
        PRAGMA user_version = 1;
    """)
    record = {"id": 1, "time_utc": "2026-01-01T00:00:00.000000+00:00", "utc_offset": "+00:00", "station_id": "old",
              "operator_id": "jdoe", "action": "SIGN_IN", "app_version": "0.1", "chip_id": None, "material": None,
              "verdict": None, "refers_to": None}
    digest = entry_hash("0" * 64, canonical_json(record))
    conn.execute("INSERT INTO entries VALUES (1, ?, 'SIGN_IN', 'jdoe', NULL, NULL, NULL, NULL, ?, ?, ?)",
                 (record["time_utc"], canonical_json(record), "0" * 64, digest))
    conn.close()
    old = verify(path)
    assert not old.ok and "is signed" in old.reason and any("schema version 1" in p for p in old.problems)
    with AuditLog(path, station_id="old") as log:
        assert log.get(1).signature is None
        log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe"))
    result = verify(path)
    assert result.ok and result.n_entries == 2 and "before signing" in result.warnings[0], result.describe()


def test_users_and_their_password_hashes_live_on_the_lab_server(lab_database):
    import psycopg
    from helpers_users import EXPERT, TECH, make_directory, make_users

    from station.users import AuthenticationError, Permission

    directory = make_directory(AuditLog(lab_database.station_url))
    make_users(directory)
    assert directory.sign_in(*TECH.login).user_id == TECH.user_id
    assert directory.sign(*EXPERT.login, Permission.OVERRIDE).signer_id == EXPERT.user_id
    with pytest.raises(AuthenticationError):
        directory.sign_in(TECH.user_id, "a-wrong-guess")
    with psycopg.connect(lab_database.station_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM station.user_credentials").fetchone()[0] == 3
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE station.user_credentials SET password_hash = 'x'")
    assert verify(lab_database.station_url).ok


def test_an_idle_connection_the_server_dropped_is_replaced_before_a_record(lab_database, monkeypatch):
    import psycopg

    from station.audit import pg

    with AuditLog(lab_database.station_url, station_id="bench-1") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        with psycopg.connect(lab_database.owner_url, autocommit=True) as owner:
            owner.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'bench'")
        monkeypatch.setattr(pg, "_IDLE_CHECK_S", 0.0)  # as if it had been idle overnight
        assert log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", chip_id="C-1")).id == 2
    assert verify(lab_database.station_url).ok
