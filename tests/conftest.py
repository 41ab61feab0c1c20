"""Every test runs with STATION_HOME in a temporary folder: never the user's real settings,
audit log or logs. Qt tests run offscreen."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The suite runs on small machines, often as two xdist workers: one torch thread per process
# keeps the cores busy without the threads of one process waiting on each other.
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass


@pytest.fixture(autouse=True)
def station_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("station-home")
    monkeypatch.setenv("STATION_HOME", str(home))
    monkeypatch.setenv("STATION_ID", "test-station")
    return home
