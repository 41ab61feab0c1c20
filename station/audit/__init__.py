"""The tamper-evident audit log (sqlite3, no Qt): who did what to which chip, with which models.

``AuditLog`` appends hash-chained, append-only entries; ``verify`` recomputes the chain;
``station.audit.export`` writes CSV, JSON and PDF reports; ``station audit ...`` is the CLI.
Importing this package opens nothing.
"""

from station.audit.chain import GENESIS_HASH, VerifyResult, canonical_json, entry_hash, verify
from station.audit.entry import Action, AuditEntry, AuditError, AuditWriteError, Verdict
from station.audit.log import AuditLog, write_selftest_entry

__all__ = [
    "GENESIS_HASH",
    "Action",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditWriteError",
    "Verdict",
    "VerifyResult",
    "canonical_json",
    "entry_hash",
    "verify",
    "write_selftest_entry",
]
