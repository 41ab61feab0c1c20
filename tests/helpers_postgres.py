"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder, on 127.0.0.1.

Runs as an unprivileged user (PostgreSQL refuses root): as root, the server runs as ``nobody``.
The owner role ``owner`` signs in with a password over TCP (scram-sha-256), like a lab's server;
``database()`` gives each test a fresh lab log (the schema ``station`` dropped and made again
by ``station audit init-server``, faster than a new database) and a login role ``bench``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("STATION_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
OWNER_PASSWORD = "owner-secret"
STATION_PASSWORD = "bench-secret"


def missing_binaries() -> str | None:
    """Why the server cannot be started here, or None."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL binaries not found ({PG_BIN / tool}; install the Debian package postgresql)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Database:
    name: str
    owner_url: str
    station_url: str  # the login role of the stations: SELECT and INSERT only


class PostgresServer:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="station-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self._user = "nobody" if getattr(os, "geteuid", lambda: -1)() == 0 else None  # Windows has no geteuid

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, user=self._user, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> PostgresServer:
        self.base.chmod(0o755)
        self.data.mkdir(mode=0o700)
        password_file = self.base / "pw"
        password_file.write_text(OWNER_PASSWORD)
        if self._user:
            shutil.chown(self.data, self._user)
            shutil.chown(password_file, self._user)
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "owner", f"--pwfile={password_file}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync",
        )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data} -c max_connections=60"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, role: str, password: str, database: str = "postgres") -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str = "lab") -> Database:
        """An empty lab log in database ``name`` (made on first use), with the station's tables and grants."""
        import psycopg

        from station.audit.pg import init_server

        with psycopg.connect(self.url("owner", OWNER_PASSWORD), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f"CREATE DATABASE {name}")
        owner_url = self.url("owner", OWNER_PASSWORD, name)
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS station CASCADE")
        init_server(owner_url, login="bench", password=STATION_PASSWORD)
        return Database(name, owner_url, self.url("bench", STATION_PASSWORD, name))
