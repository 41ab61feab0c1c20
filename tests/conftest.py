"""Every test runs with STATION_HOME in a temporary folder: never the user's real settings,
audit log or logs. Qt tests run offscreen."""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests load freshly made models: the developer setting for unapproved models, set for the whole
# session (module fixtures build engines too); the approval tests remove it
# (``helpers_users.require_approvals``).
os.environ["STATION_ALLOW_UNAPPROVED_MODELS"] = "1"


def _cheap_password_hashing() -> None:
    """argon2 with cheap parameters: the stored hash names them, so verification is the same code."""
    from argon2 import PasswordHasher

    from station.users import passwords

    passwords.PASSWORD_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


_cheap_password_hashing()

# A crashed xdist worker's stack dump goes to stderr, which CI shows only the tail of: each worker
# also writes it to a file in a folder its controller made, and the controller prints what it finds.
_CRASH_DUMPS = Path(os.environ.setdefault("STATION_TEST_CRASH_DUMPS", tempfile.mkdtemp(prefix="station-crash-")))


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        dump = open(_CRASH_DUMPS / f"{worker}.txt", "w")  # noqa: SIM115 - open until the process ends
        session.config._station_crash_dump = dump
        faulthandler.enable(file=dump, all_threads=True)


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for dump in sorted(_CRASH_DUMPS.glob("*.txt")):
        lines = [line for line in dump.read_text(errors="replace").splitlines()
                 if line.strip() and not any(part in line for part in _HARNESS_FRAMES)]
        if lines:
            terminalreporter.section(f"fatal error in worker {dump.stem}")
            terminalreporter.write_line("\n".join(lines[-80:]))


# The frames of the test harness itself say nothing about a crash and would push the rest out.
_HARNESS_FRAMES = ("/_pytest/", "/pluggy/", "/execnet/", "/xdist/", "Extension modules:", 'File "<string>"')

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
    monkeypatch.delenv("STATION_AUDIT_URL", raising=False)  # the local log unless a test names a server
    return home


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (tests/helpers_postgres.py), started once per session, stopped after."""
    from helpers_postgres import PostgresServer, missing_binaries

    reason = missing_binaries()
    if reason and sys.platform != "linux":
        pytest.skip(f"{reason} (the suite's Linux machines install PostgreSQL: scripts/install-system-deps.sh)")
    assert not reason, f"{reason}: scripts/install-system-deps.sh installs PostgreSQL"
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab_database(postgres_server):
    """A fresh database on that server, set up by init-server (owner URL and the stations' URL)."""
    return postgres_server.database()


@pytest.fixture
def fresh_logging():
    """setup_logging configures the "station" logger once per process: give each test a clean one."""
    import logging

    root = logging.getLogger("station")
    saved = (root.handlers[:], root.level, root.__dict__.copy())
    for attribute in ("_station_configured", "_log_file_problem"):
        root.__dict__.pop(attribute, None)
    root.handlers = []
    yield root
    for handler in root.handlers:
        handler.close()
    root.handlers, root.level = saved[0], saved[1]
    root.__dict__.clear()
    root.__dict__.update(saved[2])
