"""Every test runs with STATION_HOME in a temporary folder: never the user's real settings,
audit log or logs. Qt tests run offscreen."""

from __future__ import annotations

import os

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
    if reason:
        pytest.skip(reason)
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
