"""A card that does not describe its network (class count, input channels or mode) is a clear
load error naming the card, from the command a user runs (``station evaluate``), never a model
that loads and then drops a probability or fails on the first image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers_models import make_tiny_classifier, make_tiny_detector
from station.cli import main as station_main


def _edited_copy(source: Path, target: Path, **changes) -> Path:
    shutil.copytree(source, target)
    card_path = target / "card.json"
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card, indent=2))
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_tiny_classifier(root / "classifier")
    make_tiny_detector(root / "detector")
    return root


def _evaluate(model_dir: Path, tmp_path: Path, capsys) -> str:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    assert station_main(["evaluate", "--model", str(model_dir), "--data", str(data), "--format", "folder",
                         "--device", "cpu", "--quiet"]) == 1
    return capsys.readouterr().err


def test_a_classes_list_shorter_than_the_outputs_is_refused(models, tmp_path, capsys):
    card = json.loads((models / "classifier" / "card.json").read_text())
    model = _edited_copy(models / "classifier", tmp_path / "two-names", classes=card["classes"][:2])
    error = _evaluate(model, tmp_path, capsys)
    assert f"card {card['name']!r} names 2 classes" in error and "has 3 outputs" in error
    assert str(model / "card.json") in error


def test_input_channels_the_network_does_not_take_are_refused(models, tmp_path, capsys):
    card = json.loads((models / "classifier" / "card.json").read_text())
    gray = {**card["preprocessing"], "mean": card["preprocessing"]["mean"][:1], "std": card["preprocessing"]["std"][:1]}
    model = _edited_copy(models / "classifier", tmp_path / "gray", input_mode="gray",
                         input_size=[1, *card["input_size"][1:]], preprocessing=gray)
    error = _evaluate(model, tmp_path, capsys)
    assert "(1 channels) but its network takes 3 channels" in error and card["name"] in error


def test_a_detector_card_with_another_input_mode_is_refused(models, tmp_path, capsys):
    card = json.loads((models / "detector" / "card.json").read_text())
    two = {**card["preprocessing"], "mean": card["preprocessing"]["mean"][:2], "std": card["preprocessing"]["std"][:2]}
    model = _edited_copy(models / "detector", tmp_path / "with-reference", input_mode="gray+ref",
                         input_size=[2, *card["input_size"][1:]], preprocessing=two)
    error = _evaluate(model, tmp_path, capsys)
    assert card["name"] in error and ("channels" in error or "input_mode" in error)
