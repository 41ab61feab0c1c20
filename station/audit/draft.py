"""An audit entry before it is written: ``AuditLog.append(EntryDraft(...))``.

The draft is frozen and checked once, when it is made: the action and verdict are known values,
an override or correction carries its reason, and every field holds what JSON can store
(numpy values become plain numbers and lists, tuples lists), as it will read back from the log.
Only the checks that need the log itself (``refers_to`` naming an existing entry) wait for
``append``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from station.audit.chain import canonical_json
from station.audit.entry import Action, Verdict

_NOT_JSON = ("action", "verdict", "image")


@dataclass(frozen=True, eq=False)
class EntryDraft:
    """What one entry will record; ``station_id``, ``app_version``, id, time and hashes are the
    log's to add. ``image`` (HxWx3 RGB uint8) is archived by ``append`` and fills ``image_sha256``
    and ``image_path``; ``material`` defaults to ``predicted_material``; ``models`` maps model
    name to weights sha256; ``defects`` is a list of dicts (class, score, box, ...).

    Raises ``ValueError`` for an entry that must not be written: unknown action or verdict, empty
    operator id, an override without a reason or (of a material call) without the material, a
    correction without ``refers_to`` or reason, a value JSON cannot hold.
    """

    action: Action
    operator_id: str
    chip_id: str | None = None
    lot_id: str | None = None
    serial_id: str | None = None
    recipe: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None
    image_sha256: str | None = None
    image_path: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    predicted_material: str | None = None
    uncertain: bool | None = None
    defects: list[dict[str, Any]] = field(default_factory=list)
    material: str | None = None
    verdict: Verdict | None = None
    reason: str | None = None
    decap_method: str | None = None
    refers_to: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            action = Action(self.action)
        except ValueError:
            raise ValueError(f"unknown audit action {self.action!r}; one of {[a.value for a in Action]}") from None
        verdict = self.verdict
        if verdict is not None:
            try:
                verdict = Verdict(verdict)
            except ValueError:
                raise ValueError(f"unknown verdict {verdict!r}; one of {[v.value for v in Verdict]}") from None
        _set(self, "action", action)
        _set(self, "verdict", verdict)
        self._check()
        for name, empty in (("models", {}), ("thresholds", {}), ("probabilities", {}), ("defects", []), ("details", {})):
            if getattr(self, name) is None:
                _set(self, name, empty)
        if isinstance(self.image_path, Path):
            _set(self, "image_path", str(self.image_path))
        for item in dataclasses.fields(self):
            if item.name not in _NOT_JSON:
                _set(self, item.name, _json_value(item.name, getattr(self, item.name)))

    def _check(self) -> None:
        if not isinstance(self.operator_id, str) or not self.operator_id.strip():
            raise ValueError(f"an audit entry needs a non-empty operator id, got {self.operator_id!r}")
        reason = self.reason
        has_reason = isinstance(reason, str) and bool(reason.strip())
        if self.action is Action.OVERRIDE or self.verdict is Verdict.OVERRIDE:
            if not has_reason:
                raise ValueError(f"an override needs a non-empty reason, got {reason!r}")
            if self.predicted_material is not None and not self.material:  # no call: an inspection-only recipe's findings
                raise ValueError("an override of a material call needs the material the operator chose (material=...)")
        if self.action is Action.CORRECTION:
            if self.refers_to is None:
                raise ValueError("a CORRECTION needs refers_to, the id of the entry it corrects")
            if not has_reason:
                raise ValueError(f"a CORRECTION needs a non-empty reason, got {reason!r}")
        refers_to = self.refers_to
        if refers_to is not None and (isinstance(refers_to, bool) or not isinstance(refers_to, int) or refers_to < 1):
            raise ValueError(f"refers_to must be an entry id (a positive int), got {refers_to!r}")
        if self.image is not None and (self.image_sha256 is not None or self.image_path is not None):
            raise ValueError("give either image (to archive it) or image_sha256/image_path, not both")

    def record_fields(self) -> dict[str, Any]:
        """The draft as the entry's stored fields (``image`` left out: ``append`` archives it)."""
        fields = {item.name: getattr(self, item.name) for item in dataclasses.fields(self) if item.name != "image"}
        fields["action"] = self.action.value
        fields["verdict"] = None if self.verdict is None else self.verdict.value
        if fields["material"] is None:
            fields["material"] = self.predicted_material
        return fields


def _set(draft: EntryDraft, name: str, value: Any) -> None:
    object.__setattr__(draft, name, value)  # normalising a frozen dataclass in __post_init__


def _json_value(name: str, value: Any) -> Any:
    """``value`` as it will read back from the log (numpy -> lists and numbers, tuples -> lists)."""
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit field {name!r} cannot be stored: {exc}") from exc
