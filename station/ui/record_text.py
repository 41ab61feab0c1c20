"""Recorded values as a person reads them: no Python reprs (``{'5x': None}``, ``('a', 'b')``,
``None``), times in the station's local time, a familiarity check as one line. Plain functions (no
Qt), shared by the audit entry form and the e-signature dialog's description of the act."""

from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo
from typing import Any

NOTHING = "none"
SETTING_TITLES = {"objectives": "the objectives and their image scales", "foot_pedal_key": "the foot-pedal key"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def value_text(value: Any) -> str:
    """Any recorded value in words: a dict as "key: value" pairs, a list comma-separated, a
    float to 4 significant digits, None and empty containers as "none"."""
    if value is None or (isinstance(value, (dict, list, tuple, set, str)) and not value):
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {value_text(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(value_text(item) for item in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def setting_text(setting: str, value: Any) -> str:
    """A station setting's value: the objectives with their scales, a key by its name."""
    if setting == "objectives" and isinstance(value, dict) and value:
        return ", ".join(f"{name} ({f'{scale:.4g} µm/px' if scale else 'not calibrated'})" for name, scale in value.items())
    return value_text(value)


def setting_change_text(setting: str, previous: Any, value: Any) -> str:
    """What an admin signs for a settings change: "Set the foot-pedal key from F12 to F9."."""
    title = SETTING_TITLES.get(setting, setting.replace("_", " "))
    return f"Set {title} from {setting_text(setting, previous)} to {setting_text(setting, value)}."


def time_text(moment: datetime | str | float | None, zone: tzinfo | None = None) -> str:
    """An ISO 8601 string, epoch seconds or a datetime, to the second, in ``zone`` (the entry's
    local offset); the raw value where it is not a time."""
    if moment is None or moment == "":
        return NOTHING
    try:
        if isinstance(moment, (int, float)) and not isinstance(moment, bool):
            when = datetime.fromtimestamp(float(moment), tz=timezone.utc)
        elif isinstance(moment, datetime):
            when = moment
        else:
            when = datetime.fromisoformat(str(moment))
    except (ValueError, OverflowError, OSError):
        return str(moment)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # the record's times are UTC
    return when.astimezone(zone).strftime(TIME_FORMAT) if zone is not None else when.astimezone().strftime(TIME_FORMAT)


def signature_text(signature: dict, zone: tzinfo | None = None) -> str:
    """"Eve Expert (x-2, expert) — override approved, 2026-05-09 09:35:25"."""
    who = ", ".join(str(signature[key]) for key in ("signer_id", "role") if signature.get(key))
    name = signature.get("name") or signature.get("signer_id") or "unknown signer"
    meaning = signature.get("meaning") or "signed"
    return f"{name}{f' ({who})' if who and who != name else ''} — {meaning}, {time_text(signature.get('time_utc'), zone)}"


def familiarity_text(familiarity: dict, reasons: list | tuple | None = None) -> str:
    """The familiarity check of a frame as recorded (``FamiliarityCheck.to_dict``: each model's
    feature distance as a multiple of its limit, 1.00; None: no features) and, for an unfamiliar
    frame, the reasons the record gave (they name the distances already)."""
    scores = familiarity.get("scores") or {}
    parts = [f"{name} {'no features' if score is None or not math.isfinite(float(score)) else f'score {float(score):.2f}'}"
             for name, score in scores.items()]
    measured = f"{', '.join(parts)}; limit 1.00" if parts else "no feature statistics"
    if familiarity.get("familiar", True) and not familiarity.get("part_problem"):
        return f"familiar ({measured})"
    why = [str(reason) for reason in (reasons or []) if reason] or [familiarity.get("part_problem") or measured]
    return f"UNFAMILIAR: {'; '.join(why)}"
