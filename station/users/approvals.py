"""Which models an admin approved for use, by the hashes of their weights and card.

``station models approve DIR`` (admin, with their password) appends a ``MODEL_APPROVE`` entry
naming the weights' sha256 and the card file's sha256. The engine loads a recipe's model only
when both hashes match an approval on the log, so weights edited together with the card's
``weights_sha256`` (which the card check alone cannot see), or a card whose thresholds or
calibration were changed, no longer load until an admin approves them again.

``allow_unapproved_models`` in the settings (or ``STATION_ALLOW_UNAPPROVED_MODELS=1``) is the
developer's switch for training work; the engine then loads any model and says so in the log.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from station.audit.draft import EntryDraft
from station.audit.entry import Action, AuditEntry, AuditError
from station.ml.cards import CARD_FILE, WEIGHTS_FILE, file_sha256, load_card
from station.users.roles import Permission, require
from station.users.signatures import Signature

log = logging.getLogger(__name__)

ALLOW_UNAPPROVED_ENV = "STATION_ALLOW_UNAPPROVED_MODELS"


@dataclass(frozen=True)
class ModelHashes:
    name: str
    weights_sha256: str
    card_sha256: str

    @classmethod
    def of(cls, directory: Path) -> ModelHashes:
        """The hashes of the files in ``directory`` as they are now (ModelLoadError if unreadable)."""
        directory = Path(directory)
        card = load_card(directory)
        return cls(card.name, file_sha256(directory / WEIGHTS_FILE), file_sha256(directory / CARD_FILE))


@dataclass(frozen=True)
class Approval:
    hashes: ModelHashes
    entry_id: int
    approver_id: str
    time_utc: str


@dataclass(frozen=True)
class ModelApprovals:
    """The approvals on one log; ``allow_unapproved`` lifts the requirement (developer setting)."""

    approvals: tuple[Approval, ...] = ()
    allow_unapproved: bool = False
    source: str = ""
    _by_hashes: dict[tuple[str, str], Approval] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for approval in self.approvals:
            self._by_hashes.setdefault((approval.hashes.weights_sha256, approval.hashes.card_sha256), approval)

    @classmethod
    def from_log(cls, audit_log, allow_unapproved: bool = False) -> ModelApprovals:
        entries = audit_log.query(action=Action.MODEL_APPROVE)
        return cls(tuple(_approval(e) for e in entries), allow_unapproved, source=audit_log.describe_location())

    @classmethod
    def developer(cls) -> ModelApprovals:
        """Every model loads: training and evaluation work only."""
        return cls(allow_unapproved=True, source="developer setting")

    def find(self, hashes: ModelHashes) -> Approval | None:
        return self._by_hashes.get((hashes.weights_sha256, hashes.card_sha256))

    def refusal(self, hashes: ModelHashes, directory: Path) -> str | None:
        """Why ``directory``'s model may not be used, or None when it may."""
        if self.find(hashes) is not None:
            return None
        if self.allow_unapproved:
            log.warning("model %s (%s) is not approved; loaded because unapproved models are allowed (%s)",
                        hashes.name, directory, self.source)
            return None
        return (
            f"model '{hashes.name}' ({directory}) is not approved for use: weights sha256 "
            f"{hashes.weights_sha256[:12]}…, card sha256 {hashes.card_sha256[:12]}… match no approval on the "
            f"audit log; an admin approves it with `station models approve {directory}`"
        )


def station_approvals() -> ModelApprovals:
    """The station's approvals: its audit log, unless the developer setting (settings or
    environment) lifts the requirement, in which case the log is not read at all."""
    from station.audit import AuditLog
    from station.config import load_settings

    if os.environ.get(ALLOW_UNAPPROVED_ENV, "") == "1" or load_settings().allow_unapproved_models:
        return ModelApprovals.developer()
    try:
        with AuditLog(readonly=True) as audit_log:
            return ModelApprovals.from_log(audit_log)
    except AuditError as exc:  # no log yet (nothing approved), or unreadable
        log.warning("no model approvals in force: %s", exc)
        return ModelApprovals(source=f"no readable audit log ({exc})")


def approve_model(audit_log, directory: Path, signature: Signature) -> AuditEntry:
    """Record an admin's approval of the model in ``directory`` as its files are now."""
    if not isinstance(signature, Signature):
        raise TypeError("approving a model needs an admin's Signature (UserDirectory.sign(..., APPROVE_MODEL))")
    require(signature.role, Permission.APPROVE_MODEL, f"{signature.name} ({signature.signer_id})")
    directory = Path(directory)
    hashes = ModelHashes.of(directory)
    card = load_card(directory)
    if card.weights_sha256 != hashes.weights_sha256:
        raise ValueError(f"{directory}: the weights do not match the card's weights_sha256; fix the model first")
    return audit_log.append(EntryDraft(
        Action.MODEL_APPROVE,
        operator_id=signature.signer_id,
        models={hashes.name: hashes.weights_sha256},
        details={
            "model": hashes.name,
            "folder": str(directory.resolve()),
            "task": card.task,
            "architecture": card.architecture,
            "weights_sha256": hashes.weights_sha256,
            "card_sha256": hashes.card_sha256,
            "signature": signature.to_dict(),
        },
    ))


def _approval(entry: AuditEntry) -> Approval:
    details = entry.details
    hashes = ModelHashes(str(details.get("model", "")), str(details.get("weights_sha256", "")),
                         str(details.get("card_sha256", "")))
    return Approval(hashes, entry.id, entry.operator_id, entry.time_utc)
