"""Audit log speed: one signed append (commit + signature + head record), many writers, verify.

    python benchmarks/audit_log.py                         # the local SQLite file
    python benchmarks/audit_log.py --start-server          # also a PostgreSQL server started here (tests' helper)
    python benchmarks/audit_log.py --url postgresql://bench@dbhost/lab   # a lab's server (its log grows!)

Per backend: ``--count`` appends from one process (latency median and p95, in ms, each
``append`` returning only once the record is committed: fsync for SQLite, the server's commit
for PostgreSQL), then ``--writers`` processes appending ``--count`` each into the same chain
(entries per second over the wall-clock time), then ``verify`` of the whole log (entries per
second: hash chain, every Ed25519 signature, the schema). Everything runs in a scratch
``STATION_HOME``; on a shared machine the figures follow the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WRITER = r"""
import sys
from pathlib import Path
from station.audit import Action, AuditLog, EntryDraft
location = sys.argv[1] if sys.argv[1].startswith("postgresql://") else Path(sys.argv[1])
with AuditLog(location, station_id=sys.argv[2]) as log:
    log.open()
    sys.stdin.readline()  # start together
    for i in range(int(sys.argv[3])):
        log.append(EntryDraft(Action.CLASSIFY, operator_id="bench", chip_id=f"{sys.argv[2]}-{i}"))
"""


def measure(location, count: int, writers: int, home: Path) -> dict:
    from station.audit import Action, AuditLog, EntryDraft, verify

    latencies = []
    with AuditLog(location, station_id="bench-0") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="bench"))  # key made, connection open
        for i in range(count):
            started = time.perf_counter()
            log.append(EntryDraft(Action.CLASSIFY, operator_id="bench", chip_id=f"C-{i}",
                                  probabilities={"plastic": 0.7, "ceramic": 0.2, "metallic": 0.1},
                                  predicted_material="plastic"))
            latencies.append((time.perf_counter() - started) * 1000)
    processes = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(location), f"bench-{k + 1}", str(count)],
                         stdin=subprocess.PIPE, env={**os.environ, "STATION_HOME": str(home / f"w{k}")})
        for k in range(writers)
    ]
    time.sleep(3.0)  # let them import and connect
    started = time.perf_counter()
    for process in processes:
        process.stdin.write(b"go\n")
        process.stdin.flush()
    for process in processes:
        process.stdin.close()
        if process.wait() != 0:
            raise SystemExit("a writer failed")
    concurrent_s = time.perf_counter() - started
    started = time.perf_counter()
    result = verify(location)
    verify_s = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(result.describe())
    return {
        "append_ms_median": round(statistics.median(latencies), 2),
        "append_ms_p95": round(sorted(latencies)[int(0.95 * len(latencies)) - 1], 2),
        "concurrent_writers": writers,
        "concurrent_entries_per_s": round(writers * count / concurrent_s, 1),
        "verify_entries": result.n_entries,
        "verify_entries_per_s": round(result.n_entries / verify_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="appends per process (default %(default)s)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--url", help="a PostgreSQL lab log to measure as well")
    parser.add_argument("--start-server", action="store_true", help="start a scratch PostgreSQL server (needs initdb)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    os.environ["STATION_HOME"] = str(home / "main")
    report = {"sqlite": measure(home / "data" / "audit.sqlite3", args.count, args.writers, home / "sqlite")}
    server = None
    try:
        url = args.url
        if args.start_server:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from helpers_postgres import PostgresServer

            server = PostgresServer().start()
            url = server.database().station_url
        if url:
            report["postgresql"] = measure(url, args.count, args.writers, home / "pg")
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
