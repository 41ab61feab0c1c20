"""Crash safety: a writer killed with SIGKILL mid-write leaves every record whole or absent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from station.audit import AuditLog, verify
from station.audit.archive import image_status

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")

# Appends as fast as it can; prints an id only after append() has returned (committed, fsynced).
# Every third entry also archives an image, so kills land in archive writes too.
_WRITER = r"""
import sys
from pathlib import Path
import numpy as np
from station.audit import Action, AuditLog, EntryDraft

rng = np.random.default_rng(int(sys.argv[2]))
with AuditLog(Path(sys.argv[1]), station_id="crash-test") as log:
    i = 0
    while True:
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) if i % 3 == 0 else None
        entry = log.append(EntryDraft(
            "CLASSIFY",
            operator_id="op",
            chip_id=f"C-{i}",
            image=image,
            probabilities={"plastic": 0.5, "ceramic": 0.3, "metallic": 0.2},
            details={"padding": "x" * int(rng.integers(10, 5000))},
        ))
        sys.stdout.write(f"{entry.id}\n")
        sys.stdout.flush()
        i += 1
"""

_KILLS = 20


def test_sigkill_mid_write_loses_no_committed_record(tmp_path):
    db_path = tmp_path / "audit.sqlite3"
    env = {**os.environ, "STATION_HOME": str(tmp_path / "home")}
    rng = random.Random(8)
    reported: set[int] = set()
    for kill in range(_KILLS):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db_path), str(kill)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            first = writer.stdout.readline()  # the writer is up and committing
            assert first.endswith(b"\n"), writer.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.08))
            writer.send_signal(signal.SIGKILL)
            rest = writer.stdout.read()
        finally:
            writer.kill()
            writer.wait()
            writer.stdout.close()
            writer.stderr.close()
        assert writer.returncode == -signal.SIGKILL
        lines = (first + rest).split(b"\n")[:-1]  # lines end with "\n": anything after the last is cut off
        reported.update(int(line) for line in lines)

        result = verify(db_path)
        assert result.ok, f"after kill {kill}: {result.describe()}"

    with AuditLog(db_path, readonly=True) as log:
        entries = log.query()
        statuses = {e.id: log.image_status(e) for e in entries}
    stored = {e.id for e in entries}
    missing = reported - stored
    assert not missing, f"committed records lost: {sorted(missing)[:10]}"
    assert len(reported) > _KILLS
    for entry in entries:
        if entry.image_sha256:
            assert statuses[entry.id] == "ok", entry.id
    archive = tmp_path / "archive"
    for png in archive.rglob("*.png"):
        assert image_status(png.stem, png) == "ok", f"a torn archive file under its final name: {png}"
