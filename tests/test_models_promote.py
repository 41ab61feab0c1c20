"""``station models promote``: an admin switches a recipe to an approved model, on the record."""

from __future__ import annotations

import io
import json

import pytest
from helpers_models import make_tiny_classifier, make_tiny_recipe
from helpers_users import ADMIN, EXPERT, approve_models, make_directory, make_users, require_approvals

from station import paths
from station.audit import Action, AuditLog
from station.cli import main
from station.inference import Engine
from station.inference.recipes import load_recipes


def _station(argv, monkeypatch, *lines):
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    return main(argv)


@pytest.fixture
def station(tmp_path, monkeypatch):
    """A user recipe on tiny approved models, and a second classifier trained 'on the lab's chips'."""
    require_approvals(monkeypatch)
    recipe = make_tiny_recipe(tmp_path / "models", name="Lab recipe")
    (paths.recipes_dir() / "lab.json").write_text(json.dumps(recipe.to_dict()), encoding="utf-8")
    directory = make_directory()
    make_users(directory)
    approve_models(recipe.classifier, recipe.detector, directory=directory)
    candidate = tmp_path / "runs" / "lab-material"
    make_tiny_classifier(candidate, seed=1, name="lab-material", uncertain_confidence=0.7)
    return recipe, candidate, directory


def test_promote_switches_the_recipe_and_records_the_change(station, monkeypatch, capsys):
    recipe, candidate, directory = station
    approve_models(candidate, directory=directory)
    assert _station(["models", "promote", str(candidate), "--recipe", "Lab recipe", "--admin", ADMIN.user_id],
                    monkeypatch, ADMIN.password) == 0
    out = capsys.readouterr().out
    assert "classifier" in out and "MODEL_CHANGE" in out and "uncertain_below" in out
    promoted = load_recipes()["Lab recipe"]
    assert promoted.classifier == str(candidate.resolve()) and promoted.detector == recipe.detector
    assert promoted.uncertain_below is None  # the new card's fitted threshold applies
    assert promoted.origin == paths.recipes_dir() / "lab.json"  # the user's own file, rewritten
    with AuditLog(readonly=True) as log:
        assert log.verify().ok
        change = log.query(action=Action.MODEL_CHANGE)[-1]
    assert change.recipe == "Lab recipe" and change.operator_id == ADMIN.user_id
    assert change.details["previous_model"] == recipe.classifier and change.details["role"] == "classifier"
    assert change.details["signature"]["signer_id"] == ADMIN.user_id
    assert "lab-material" in change.models
    with Engine(promoted, device="cpu", warm_up=False) as engine:
        assert engine.classifier.card.name == "lab-material"


def test_an_unapproved_model_is_not_promoted(station, monkeypatch, capsys):
    _, candidate, _ = station
    before = (paths.recipes_dir() / "lab.json").read_text()
    assert _station(["models", "promote", str(candidate), "--recipe", "Lab recipe", "--admin", ADMIN.user_id],
                    monkeypatch, ADMIN.password) == 2
    assert "not approved" in capsys.readouterr().err
    assert (paths.recipes_dir() / "lab.json").read_text() == before
    with AuditLog(readonly=True) as log:
        assert not log.query(action=Action.MODEL_CHANGE)


def test_only_an_admin_with_the_right_password_promotes(station, monkeypatch, capsys):
    _, candidate, directory = station
    approve_models(candidate, directory=directory)
    for account, password in ((EXPERT, EXPERT.password), (ADMIN, "wrong-password")):
        assert _station(["models", "promote", str(candidate), "--recipe", "Lab recipe", "--admin", account.user_id],
                        monkeypatch, password) == 1
        assert "refused" in capsys.readouterr().err
    assert load_recipes()["Lab recipe"].classifier != str(candidate.resolve())


def test_a_model_the_recipe_cannot_use_is_refused(station, monkeypatch, capsys, tmp_path):
    _, _, directory = station
    odd = tmp_path / "runs" / "glass-material"
    make_tiny_classifier(odd, name="glass-material")
    data = json.loads((odd / "card.json").read_text())
    data["classes"] = ["plastic", "glass", "ceramic"]  # "glass" has no decapsulation method in the recipe
    (odd / "card.json").write_text(json.dumps(data, indent=2))
    approve_models(odd, directory=directory)
    assert _station(["models", "promote", str(odd), "--recipe", "Lab recipe", "--admin", ADMIN.user_id],
                    monkeypatch, ADMIN.password) == 2
    err = capsys.readouterr().err
    assert "would not load" in err and "glass" in err
    assert not list(paths.recipes_dir().glob(".*promoting"))


def test_an_unknown_recipe_is_named(station, monkeypatch, capsys):
    _, candidate, _ = station
    assert _station(["models", "promote", str(candidate), "--recipe", "No such", "--admin", ADMIN.user_id],
                    monkeypatch, ADMIN.password) == 2
    assert "Lab recipe" in capsys.readouterr().err


def test_a_log_that_cannot_be_written_leaves_the_old_recipe(station, monkeypatch):
    from station.inference.promotion import promote
    from station.users import Permission

    recipe, candidate, directory = station
    approve_models(candidate, directory=directory)
    signature = directory.sign(*ADMIN.login, Permission.APPROVE_MODEL)
    before = (paths.recipes_dir() / "lab.json").read_text()

    def full_disk(draft):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(directory.log, "append", full_disk)
    with pytest.raises(OSError):
        promote(directory.log, load_recipes()["Lab recipe"], candidate, signature)
    assert (paths.recipes_dir() / "lab.json").read_text() == before
    assert not list(paths.recipes_dir().glob(".*promoting"))
