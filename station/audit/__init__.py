"""The tamper-evident audit log (no Qt): who did what to which chip, with which models.

``AuditLog.append(EntryDraft(...))`` appends hash-chained, signed, append-only entries to a local SQLite file or a lab's
PostgreSQL server (``station.audit.backend``); ``verify`` recomputes the chain and checks the
signatures;
``station.audit.export`` writes CSV, JSON and PDF reports; ``station audit ...`` is the CLI.
Importing this package opens nothing.
"""

from station.audit.chain import GENESIS_HASH, VerifyResult, canonical_json, entry_hash, verify
from station.audit.draft import EntryDraft
from station.audit.entry import Action, AuditEntry, AuditError, AuditUnavailableError, AuditWriteError, Verdict
from station.audit.log import AuditLog, LogStatus, write_selftest_entry
from station.audit.setup import AuditSetup

__all__ = [
    "GENESIS_HASH",
    "Action",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditSetup",
    "AuditUnavailableError",
    "AuditWriteError",
    "EntryDraft",
    "LogStatus",
    "Verdict",
    "VerifyResult",
    "canonical_json",
    "entry_hash",
    "verify",
    "write_selftest_entry",
]
