"""What a person reads for a recorded value, on the screens, in the reports and from the CLI: a
model's class ("chipped_edge" -> "Chipped edge"), an audit action ("REJECT_HOLD" -> "Hold"), a
verdict; values without Python reprs (``{'5x': None}``, ``None``), times in the station's local
time, an image scale, a signature and a familiarity check as one line. The record keeps the raw
names; screens and reports show these, with the raw name in a tooltip or beside it. Plain
functions, no Qt."""

from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo
from typing import Any

ACTION_TITLES = {
    "SIGN_IN": "Sign in",
    "SIGN_OUT": "Sign out",
    "RECIPE_CHANGE": "Recipe change",
    "MODEL_CHANGE": "Model change",
    "THRESHOLD_CHANGE": "Threshold change",
    "SETTINGS_CHANGE": "Settings change",
    "CLASSIFY": "Classified",
    "VERDICT": "Accepted",
    "OVERRIDE": "Override",
    "REJECT_HOLD": "Hold",
    "RELEASE": "Released to decap",
    "HANDOVER": "Handed over",
    "DISCARD": "Set aside",
    "CORRECTION": "Correction",
    "BATCH_VERDICT": "Batch verdict",
    "SELFTEST": "Self-test",
    "USER_ADD": "User added",
    "USER_CHANGE": "User changed",
    "SIGN_IN_FAILED": "Sign-in failed",
    "ACCOUNT_LOCKED": "Account locked",
    "SESSION_LOCK": "Session locked",
    "MODEL_APPROVE": "Model approved",
}
VERDICT_TITLES = {"accept": "Accept", "override": "Override", "reject_hold": "Hold"}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """"1 error", "2 errors"."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def display_name(raw: str | None) -> str:
    """A model's raw class name as words: "chipped_edge" -> "Chipped edge"."""
    if not raw:
        return "—"
    text = raw.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def action_title(raw: str | None) -> str:
    return ACTION_TITLES.get(str(raw), display_name(str(raw).lower())) if raw else "—"


def verdict_title(raw: str | None) -> str:
    return VERDICT_TITLES.get(str(raw), display_name(str(raw))) if raw else "—"


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


def scale_text(um_per_px: float | None) -> str:
    """An objective's image scale: "0.512 µm/px", or "not calibrated" (None)."""
    return f"{um_per_px:.4g} µm/px" if um_per_px else "not calibrated"


def recorded_time_text(local: datetime, utc_offset: str) -> str:
    """When an entry was recorded, in the station's time then: "2026-05-09 09:35:25 (UTC+02:00)"."""
    return f"{local.strftime(TIME_FORMAT)} (UTC{utc_offset})"


def setting_text(setting: str, value: Any) -> str:
    """A station setting's value: the objectives with their scales, a key by its name."""
    if setting == "objectives" and isinstance(value, dict) and value:
        return ", ".join(f"{name} ({scale_text(scale)})" for name, scale in value.items())
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


FAINT_MAP_PEAK = 0.4  # below this the blended map (opacity × sqrt(level), inferno: dark purple) is hard to see


def map_note(heatmap: Any) -> tuple[str, str]:
    """(short note, tooltip) for an attention map about to be shown: ("", "") when it will be
    seen, a note when it will not, so an empty-looking overlay is explained rather than a mystery."""
    if heatmap is None:
        return "no map", "No attention map for this result: it was not asked for, or the recipe has no such model."
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if not math.isfinite(peak) or peak >= FAINT_MAP_PEAK:
        return "", ""
    return ("faint map",
            f"The map peaks at {peak:.0%} of its reference. Maps are scaled against the model card's fixed "
            "reference range, so that frames compare. The model's attention is weak or spread out here, not "
            "missing: read the call with that in mind.")
