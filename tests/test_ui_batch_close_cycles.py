"""No crash at exit: the batch review opened from the station, run, and closed in each of the
ways a technician closes it, each cycle in a fresh process (scripts/batch_close_cycles.py). Four
cycles (one of each way) by default; STATION_CLOSE_CYCLES=50 runs the full check (about 4 minutes on 2 cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

ROOT = Path(__file__).resolve().parents[1]


def test_open_run_close_cycles_exit_cleanly():
    cycles = os.environ.get("STATION_CLOSE_CYCLES", "4")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "batch_close_cycles.py"), "--cycles", cycles],
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert f"{cycles} of {cycles} cycles exited cleanly" in run.stdout
