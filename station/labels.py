"""What an operator reads for a stored name: a model's class ("chipped_edge" -> "Chipped edge"),
an audit action ("REJECT_HOLD" -> "Hold"), a verdict. The record keeps the raw names; screens
and reports show these, with the raw name in a tooltip or beside it."""

from __future__ import annotations

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
