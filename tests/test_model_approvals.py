"""A recipe loads only models an admin approved (station.users.approvals)."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers_models import make_tiny_recipe
from helpers_users import approve_models, make_directory, require_approvals
from safetensors.torch import load_file, save_file

from station.audit import Action, AuditLog
from station.inference import Engine, UnapprovedModelError
from station.ml.cards import CARD_FILE, WEIGHTS_FILE
from station.users.approvals import ModelApprovals, ModelHashes
from station.users.demo import DEMO_ACCOUNTS, prepare_demo_station


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    require_approvals(monkeypatch)
    return make_tiny_recipe(tmp_path / "models")


def test_an_unapproved_model_is_refused(recipe):
    with pytest.raises(UnapprovedModelError, match="not approved.*station models approve"):
        Engine(recipe, device="cpu", warm_up=False)


def test_approved_models_load(recipe):
    approve_models(recipe.classifier, recipe.detector)
    with Engine(recipe, device="cpu", warm_up=False) as engine:
        assert engine.classifier is not None and engine.detector is not None


def test_weights_edited_together_with_the_cards_sha256_no_longer_load(recipe):
    approve_models(recipe.classifier, recipe.detector)
    folder = recipe.model_dir(recipe.classifier)
    tensors = load_file(folder / WEIGHTS_FILE)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.5  # a quiet change to the network
    save_file(tensors, folder / WEIGHTS_FILE)
    card = json.loads((folder / CARD_FILE).read_text())
    card["weights_sha256"] = hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2))
    with pytest.raises(UnapprovedModelError, match="tiny-material"):
        Engine(recipe, device="cpu", warm_up=False)


def test_a_card_edited_after_approval_needs_approving_again(recipe):
    approve_models(recipe.classifier, recipe.detector)
    folder = recipe.model_dir(recipe.detector)
    card = json.loads((folder / CARD_FILE).read_text())
    card["thresholds"]["score"] = 0.001  # report every box
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2))
    with pytest.raises(UnapprovedModelError, match="tiny-defects"):
        Engine(recipe, device="cpu", warm_up=False)
    approve_models(folder)
    Engine(recipe, device="cpu", warm_up=False).close()


def test_the_developer_setting_lifts_the_requirement(recipe, monkeypatch):
    monkeypatch.setenv("STATION_ALLOW_UNAPPROVED_MODELS", "1")
    Engine(recipe, device="cpu", warm_up=False).close()
    Engine(recipe, device="cpu", warm_up=False, approvals=ModelApprovals.developer()).close()


def test_approvals_are_by_hash_not_by_folder(recipe, tmp_path):
    import shutil

    approve_models(recipe.classifier, recipe.detector)
    moved = tmp_path / "moved"
    shutil.copytree(recipe.model_dir(recipe.classifier), moved)
    approvals = ModelApprovals.from_log(AuditLog())
    assert approvals.find(ModelHashes.of(moved)) is not None


def test_the_demo_station_gets_demo_accounts_and_approved_bundled_models(monkeypatch):
    require_approvals(monkeypatch)
    directory = make_directory()
    done = prepare_demo_station(directory)
    assert done[0].startswith("created the demo accounts")
    users = directory.users()
    assert set(users) == {a[0] for a in DEMO_ACCOUNTS} and all(u.demo for u in users.values())
    for user_id, _, role, password in DEMO_ACCOUNTS:
        assert directory.sign_in(user_id, password).role is role
    from station.inference import load_recipes

    recipe = load_recipes()["IC package (demo)"]
    Engine(recipe, device="cpu", warm_up=False).close()
    approved = directory.log.query(action=Action.MODEL_APPROVE)
    assert approved and all(e.operator_id == "demo-admin" for e in approved)
    assert prepare_demo_station(directory) == []  # nothing more to do on the next start


def test_a_station_with_a_real_user_gets_no_demo_accounts(monkeypatch):
    directory = make_directory()
    directory.add_first_admin("A001", "Ada Admin", "admin-password-1")
    assert prepare_demo_station(directory) == []
    assert set(directory.users()) == {"A001"} and not directory.log.query(action=Action.MODEL_APPROVE)
