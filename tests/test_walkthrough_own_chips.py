"""docs/OWN-CHIPS.md end to end on synthetic chips: capture -> review -> dataset -> fine-tune ->
compare -> approve -> promote, each step through the station's own CLI (the review's verdicts
through the same code the batch window calls)."""

from __future__ import annotations

import csv
import io
import json

from helpers_models import make_tiny_recipe
from helpers_users import ADMIN, approve_models, make_directory, make_users, require_approvals, signature_for

from station import paths
from station.audit import Action, AuditLog, Verdict
from station.cli import main
from station.inference.recipes import load_recipes
from station.review.store import BatchStore
from station.review.verdicts import BatchContext, VerdictRequest, commit_verdict
from station.users import Permission
from station.workflow import Operator

RECIPE = "Lab chips"
EXPERT = Operator("E001", "Erin Expert")


def _station(monkeypatch, *argv, password=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n" if password else ""))
    return main([str(a) for a in argv])


def test_train_on_your_own_chips(tmp_path, monkeypatch, capsys):
    require_approvals(monkeypatch)
    # the station as installed: a recipe on an approved classifier, users with an admin
    recipe = make_tiny_recipe(tmp_path / "models", name=RECIPE, detector=False)
    (paths.recipes_dir() / "lab-chips.json").write_text(json.dumps(recipe.to_dict()), encoding="utf-8")
    directory = make_directory()
    make_users(directory)
    approve_models(recipe.classifier, directory=directory)

    # 1. capture: the lab's chips, one folder per material only so that this test knows the truth
    captures = tmp_path / "captures"
    assert _station(monkeypatch, "synth", "--out", captures, "--count", 24, "--size", 64, 64, "--seed", 100) == 0
    truth = {p.relative_to(captures).as_posix(): p.parent.name for p in captures.rglob("*.png")}
    assert len(truth) == 24

    # 2. review: the batch run, then an expert accepts the right calls and overrides the wrong ones
    report = tmp_path / "review.csv"
    assert _station(monkeypatch, "batch", captures, "--recipe", RECIPE, "--out", report, "--recursive",
                    "--device", "cpu", "--no-attention", "--quiet") == 0
    with report.open(encoding="utf-8-sig", newline="") as stream:
        assert sum(row["status"] == "ok" for row in csv.DictReader(stream)) == 24  # and synth's manifest.jsonl, listed
    store = BatchStore.for_folder(captures.resolve(), RECIPE)
    context = BatchContext(captures.resolve(), store.directory, dict(recipe.decap_methods))
    overridden = 0
    with store, AuditLog() as audit_log:
        for row in (r for r in store.rows() if r.relative_path in truth):
            right = truth[row.relative_path]
            if row.material == right and not row.uncertain:
                request = VerdictRequest((row.item_id,), Verdict.ACCEPT, EXPERT)
            else:
                overridden += 1
                request = VerdictRequest((row.item_id,), Verdict.OVERRIDE, EXPERT, right, "checked under the stereo microscope",
                                         signature=signature_for(Permission.OVERRIDE))
            commit_verdict(audit_log, store, context, row.item_id, request)

    # 3. dataset: the reviewed images with the expert's final material as the label
    dataset = tmp_path / "dataset"
    capsys.readouterr()
    assert _station(monkeypatch, "dataset", "from-batch", captures, "--recipe", RECIPE, "--out", dataset) == 0
    assert "wrote 24 images" in capsys.readouterr().out
    manifest = [json.loads(line) for line in (dataset / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(row["label"] for row in manifest) == sorted(truth.values())

    # 4. fine-tune from the recipe's model
    tuned = tmp_path / "runs" / "lab-material"
    assert _station(monkeypatch, "train", "classifier", "--init", recipe.classifier, "--data", dataset, "--format", "folder",
                    "--epochs", 2, "--imgsz", 64, "--batch", 8, "--workers", 0, "--name", "lab-material",
                    "--out", tuned, "--quiet") == 0
    card = json.loads((tuned / "card.json").read_text(encoding="utf-8"))
    assert card["training"]["parent"]["name"] == "tiny-material"

    # 5. compare on chips neither model saw
    heldout = tmp_path / "heldout"
    assert _station(monkeypatch, "synth", "--out", heldout, "--count", 12, "--size", 64, 64, "--seed", 900) == 0
    capsys.readouterr()
    assert _station(monkeypatch, "models", "compare", recipe.classifier, tuned, "--data", heldout, "--format", "folder",
                    "--device", "cpu") == 0
    assert "McNemar" in capsys.readouterr().out

    # 6. approve, 7. promote: both the admin's signed acts, on the log
    assert _station(monkeypatch, "models", "approve", tuned, "--admin", ADMIN.user_id, password=ADMIN.password) == 0
    assert _station(monkeypatch, "models", "promote", tuned, "--recipe", RECIPE, "--admin", ADMIN.user_id,
                    password=ADMIN.password) == 0
    assert load_recipes()[RECIPE].classifier == str(tuned.resolve())
    with AuditLog(readonly=True) as audit_log:
        assert audit_log.verify().ok
        actions = [e.action for e in audit_log.query()]
    assert actions.count(Action.BATCH_VERDICT) == 24 and actions[-2:] == [Action.MODEL_APPROVE, Action.MODEL_CHANGE]

    # the station now inspects with the lab's model
    assert _station(monkeypatch, "batch", heldout, "--recipe", RECIPE, "--out", tmp_path / "after.csv", "--recursive",
                    "--device", "cpu", "--no-attention", "--quiet") == 0
    assert overridden >= 0
