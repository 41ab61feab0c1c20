"""``station audit migrate``: a station's local log, copied as it is into the lab's server log."""

from __future__ import annotations

from pathlib import Path

from station.audit import db
from station.audit.backend import SQLiteBackend
from station.audit.chain import verify
from station.audit.entry import AuditError
from station.audit.pg import PostgresBackend, redact


def migrate(source: Path, to_url: str) -> int:
    """Copy the local log at ``source``, chain and signatures as they are, into the server's empty log.

    The source must verify; the copy is verified after. Returns the number of entries copied.
    """
    checked = verify(source)
    if not checked.ok:
        raise AuditError(f"the local log {source} does not verify, so it is not copied: {checked.describe()}")
    local = SQLiteBackend(Path(source), readonly=True)
    server = PostgresBackend(to_url)
    try:
        with local.transaction() as read, server.transaction(lock="station-audit-append") as write:
            if write.execute("SELECT count(*) FROM entries")[0][0]:
                raise AuditError(
                    f"the server's log {server.location} already has entries: a local log can only be copied into "
                    "an empty one (its entries' hashes and signatures fix their place in the chain)"
                )
            n = 0
            insert = f"INSERT INTO entries ({', '.join(db.COLUMNS)}) VALUES ({', '.join('?' * len(db.COLUMNS))})"
            for row in read.stream(f"SELECT {local.select_columns()} FROM entries ORDER BY id"):
                write.execute(insert, row)
                n += 1
    finally:
        local.close()
        server.close()
    copied = verify(to_url, station_record=False)
    if not copied.ok or copied.head_hash != checked.head_hash:
        raise AuditError(f"the copy on {redact(to_url)} does not verify: {copied.describe()}")
    return n
