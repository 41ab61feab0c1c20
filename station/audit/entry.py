"""What an audit entry holds, and the errors the audit log raises."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any


class AuditError(Exception):
    """The audit log cannot be read, or is not an audit log."""


class AuditWriteError(AuditError):
    """An entry (or an archived image) was NOT durably written; the message says why.

    Nothing partial is left behind. The GUI keeps "Release to decapping" disabled on it.
    """


class AuditUnavailableError(AuditWriteError):
    """The lab's log server cannot be reached: nothing was written, release stays blocked."""


class Action(str, Enum):
    """What the operator (or the station) did. The value is what is stored."""

    SIGN_IN = "SIGN_IN"
    SIGN_OUT = "SIGN_OUT"
    RECIPE_CHANGE = "RECIPE_CHANGE"
    MODEL_CHANGE = "MODEL_CHANGE"
    THRESHOLD_CHANGE = "THRESHOLD_CHANGE"
    SETTINGS_CHANGE = "SETTINGS_CHANGE"
    CLASSIFY = "CLASSIFY"
    VERDICT = "VERDICT"  # the operator accepts the classification
    OVERRIDE = "OVERRIDE"  # the operator chooses another material; reason mandatory
    REJECT_HOLD = "REJECT_HOLD"
    RELEASE = "RELEASE"  # released to decapping
    HANDOVER = "HANDOVER"  # a pending inspection passes to the operator who signed in
    DISCARD = "DISCARD"  # a pending inspection set aside without release; reason says why
    CORRECTION = "CORRECTION"  # amends the entry named by refers_to; reason mandatory
    BATCH_VERDICT = "BATCH_VERDICT"
    SELFTEST = "SELFTEST"
    USER_ADD = "USER_ADD"  # details: user, name, role, credential key; signed by an admin
    USER_CHANGE = "USER_CHANGE"  # details: user, change (role, disable, enable, passwd); signed by an admin
    SIGN_IN_FAILED = "SIGN_IN_FAILED"  # a wrong password (or unknown, disabled, locked account)
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"  # too many failed tries; details: locked_until
    SESSION_LOCK = "SESSION_LOCK"  # an idle session locked itself; its user must sign in again
    MODEL_APPROVE = "MODEL_APPROVE"  # models: name -> weights sha256; details: card sha256; signed by an admin

    def __str__(self) -> str:
        return self.value


class Verdict(str, Enum):
    ACCEPT = "accept"
    OVERRIDE = "override"
    REJECT_HOLD = "reject_hold"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AuditEntry:
    """One committed record. Every field except ``prev_hash``, ``hash`` and ``signature`` is hashed.

    Times: ``time_utc`` is ISO 8601 in UTC with microseconds (``2026-05-09T07:35:25.123456+00:00``);
    ``utc_offset`` is the station's local offset when the entry was written (``+02:00``).
    ``material`` is the material of record: the operator's choice on an override, otherwise
    the predicted one.
    """

    id: int  # the sequence number: 1, 2, 3, ... without gaps
    time_utc: str
    utc_offset: str
    station_id: str
    operator_id: str
    action: str
    app_version: str
    chip_id: str | None = None
    lot_id: str | None = None
    serial_id: str | None = None
    recipe: str | None = None
    models: dict[str, str] = field(default_factory=dict)  # model name -> weights sha256
    thresholds: dict[str, float] = field(default_factory=dict)
    image_sha256: str | None = None  # sha256 of the archived PNG file's bytes
    image_path: str | None = None  # the archived lossless PNG
    probabilities: dict[str, float] = field(default_factory=dict)  # material -> calibrated probability
    predicted_material: str | None = None
    uncertain: bool | None = None  # flagged "route to expert"
    defects: list[dict[str, Any]] = field(default_factory=list)
    material: str | None = None
    verdict: str | None = None
    reason: str | None = None  # the override or correction reason
    decap_method: str | None = None
    refers_to: int | None = None  # the entry a CORRECTION amends
    details: dict[str, Any] = field(default_factory=dict)
    signing_key: str | None = None  # the station's Ed25519 public key (hex); None on entries from before signing
    prev_hash: str = ""
    hash: str = ""
    signature: str | None = None  # Ed25519 over keys.head_message(id, hash) by signing_key

    def record(self) -> dict[str, Any]:
        """The hashed part: every field except ``prev_hash``, ``hash`` and ``signature``.

        Entries written before signing (schema 1) have no ``signing_key`` in their record.
        """
        record = {name: getattr(self, name) for name in HASHED_FIELDS}
        if record["signing_key"] is None:
            del record["signing_key"]
        return record

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(
        cls, record: dict[str, Any], prev_hash: str, hash: str, signature: str | None = None
    ) -> AuditEntry:
        """Rebuild from a stored payload; keys this version does not know are ignored."""
        known = {name: record[name] for name in HASHED_FIELDS if name in record}
        return cls(**known, prev_hash=prev_hash, hash=hash, signature=signature)

    @property
    def time(self) -> datetime:
        """The UTC time as an aware datetime."""
        return datetime.fromisoformat(self.time_utc)

    @property
    def local_time(self) -> datetime:
        """The time as the station's clock showed it (with its offset)."""
        hours, minutes = self.utc_offset[1:].split(":")[:2]
        sign = -1 if self.utc_offset.startswith("-") else 1
        offset = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
        return self.time.astimezone(offset)


HASHED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(AuditEntry) if f.name not in ("prev_hash", "hash", "signature")
)
