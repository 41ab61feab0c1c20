"""Switching a recipe to another model, on the record (``station models promote``).

A promotion is a change to what decides a chip's fate, so it is an admin's signed act:

1. the new model must already be approved on the same log (``station models approve``);
2. the recipe with the new model must load: an :class:`~station.inference.Engine` is built from it
   (every material of the new classifier needs a decapsulation method, the card must read, ...);
3. the recipe is written to the user recipes folder (same ``name``, so it overrides the bundled
   one) through a temporary file; the ``MODEL_CHANGE`` entry is appended; only then does the
   temporary file replace the recipe. A log that cannot be written leaves the old recipe in force.

The model-specific threshold of the swapped role (``uncertain_below`` for a classifier,
``score_threshold`` for a detector) is reset to ``null`` so the new model's card supplies its own
fitted value, unless ``keep_thresholds`` says otherwise: a threshold tuned on one model says
nothing about another.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from station import paths
from station.audit.draft import EntryDraft
from station.audit.entry import Action, AuditEntry
from station.inference.engine import Engine
from station.inference.errors import EngineError
from station.inference.recipes import Recipe, load_recipes
from station.ml.cards import load_card
from station.users.approvals import ModelApprovals, ModelHashes
from station.users.roles import Permission, check_signature
from station.users.signatures import Signature

ROLE_OF_TASK = {"classification": "classifier", "detection": "detector"}
THRESHOLD_OF_ROLE = {"classifier": "uncertain_below", "detector": "score_threshold"}


class PromotionError(ValueError):
    """The promotion cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Promotion:
    recipe: Recipe  # as written, with ``origin`` the file it now lives in
    role: str  # "classifier" | "detector"
    previous_model: str | None
    entry: AuditEntry
    reset_threshold: str | None  # the recipe field set back to the card's value, if any


def promote(audit_log, recipe: Recipe, model_dir: Path, signature: Signature, *,
            keep_thresholds: bool = False, recipes_dir: Path | None = None, device: str = "cpu") -> Promotion:
    """Switch ``recipe`` to the model in ``model_dir``, signed by ``signature`` (APPROVE_MODEL)."""
    check_signature(signature, Permission.APPROVE_MODEL)
    model_dir = Path(model_dir).resolve()
    card = load_card(model_dir)
    hashes = ModelHashes.of(model_dir)
    approvals = ModelApprovals.from_log(audit_log)
    approval = approvals.find(hashes)
    if approval is None:
        raise PromotionError(f"model '{card.name}' ({model_dir}) is not approved on {audit_log.describe_location()}; "
                             f"approve it first: station models approve {model_dir} --admin ID")
    role = ROLE_OF_TASK[card.task]
    previous = getattr(recipe, role)
    changes: dict[str, object] = {role: str(model_dir)}
    reset = None
    threshold_field = THRESHOLD_OF_ROLE[role]
    if not keep_thresholds and getattr(recipe, threshold_field) is not None:
        changes[threshold_field] = None
        reset = threshold_field
    target_dir = Path(recipes_dir) if recipes_dir is not None else paths.recipes_dir()
    target = _recipe_file(recipe, target_dir)
    promoted = dataclasses.replace(recipe, **changes, origin=target)
    try:
        Engine(promoted, device=device, warm_up=False, approvals=approvals).close()
    except EngineError as exc:
        raise PromotionError(f"recipe '{recipe.name}' with model '{card.name}' would not load: {exc}") from exc

    temporary = target.with_name(f".{target.name}.promoting")
    temporary.write_text(json.dumps(promoted.to_dict(), indent=2) + "\n", encoding="utf-8")
    try:
        entry = audit_log.append(EntryDraft(
            Action.MODEL_CHANGE,
            operator_id=signature.signer_id,
            recipe=recipe.name,
            models={hashes.name: hashes.weights_sha256},
            details={
                "role": role,
                "model": hashes.name,
                "folder": str(model_dir),
                "weights_sha256": hashes.weights_sha256,
                "card_sha256": hashes.card_sha256,
                "approval_entry": approval.entry_id,
                "previous_model": previous,
                "threshold_reset": reset,
                "recipe_file": str(target),
                "signature": signature.to_dict(),
            },
        ))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
    return Promotion(promoted, role, previous, entry, reset)


def _recipe_file(recipe: Recipe, recipes_dir: Path) -> Path:
    """The user recipe file for ``recipe``: its own file when it is already a user recipe,
    else a new one named after the recipe."""
    recipes_dir.mkdir(parents=True, exist_ok=True)
    if recipe.origin is not None and Path(recipe.origin).resolve().parent == recipes_dir.resolve():
        return Path(recipe.origin)
    stem = re.sub(r"[^a-z0-9_]+", "-", recipe.name.lower()).strip("-") or "recipe"
    return recipes_dir / f"{stem}.json"


def configure_promote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL_DIR", help="an approved model folder")
    parser.add_argument("--recipe", required=True, metavar="NAME", help="the recipe to switch (see the station's recipe list)")
    parser.add_argument("--admin", required=True, metavar="ADMIN_ID", help="the signing admin (asked for their password)")
    parser.add_argument("--keep-thresholds", action="store_true",
                        help="keep the recipe's own threshold for the swapped model instead of the new card's")
    parser.add_argument("--db", type=Path, help="audit database (default: the station's own log)")


def run_promote(args: argparse.Namespace) -> int:
    """``station models promote MODEL_DIR --recipe NAME --admin ID`` (configured in ``station.ml.cli``)."""
    from station.audit.entry import AuditError
    from station.ml.cards import ModelLoadError
    from station.users.cli import admin_signature, open_directory
    from station.users.directory import AuthenticationError
    from station.users.roles import PermissionDenied

    recipes = load_recipes()
    recipe = recipes.get(args.recipe)
    if recipe is None:
        print(f"station models promote: no recipe named {args.recipe!r}; known: {', '.join(sorted(recipes)) or 'none'}",
              file=sys.stderr)
        return 2
    try:
        load_card(args.model)  # a readable model before the admin is asked anything
        directory = open_directory(args.db)
        signature = admin_signature(directory, args.admin, Permission.APPROVE_MODEL)
        done = promote(directory.log, recipe, args.model, signature, keep_thresholds=args.keep_thresholds)
    except (AuthenticationError, PermissionDenied) as exc:
        print(f"station models promote: refused: {exc}", file=sys.stderr)
        return 1
    except (PromotionError, ModelLoadError, AuditError, EOFError, OSError) as exc:
        print(f"station models promote: {exc}", file=sys.stderr)
        return 2
    print(f"recipe '{recipe.name}': {done.role} {done.previous_model or '(none)'} -> {getattr(done.recipe, done.role)}")
    if done.reset_threshold:
        print(f"  {done.reset_threshold} now comes from the new model's card (was {getattr(recipe, done.reset_threshold)})")
    print(f"  written to {done.recipe.origin}; audit entry #{done.entry.id} (MODEL_CHANGE, signed by {signature.signer_id})")
    return 0
