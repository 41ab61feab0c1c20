"""Model cards: save/load round trip, refusal of bad weights, preprocessing from the card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from station.ml.cards import (
    CARD_FILE,
    README_FILE,
    WEIGHTS_FILE,
    CamReference,
    ModelCard,
    ModelLoadError,
    Preprocessing,
    load_card,
    load_model,
    prepare_input,
    save_model,
)
from station.ml.registry import build_model

DETECTOR_KWARGS = {"num_classes": 2, "input_mode": "gray+ref"}


def detector_card(**changes) -> ModelCard:
    fields = dict(
        name="tiny-detector",
        task="detection",
        architecture="wbam-ffem-nano",
        build_kwargs=DETECTOR_KWARGS,
        classes=["open", "short"],
        input_size=(2, 64, 64),
        input_mode="gray+ref",
        preprocessing=Preprocessing(resize="letterbox", mean=(0.0, 0.0), std=(1.0, 1.0), grayscale=True),
        cam_reference=CamReference(0.1, 2.5),
        metrics={"map50": 0.5},
    )
    return ModelCard(**(fields | changes))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("wbam-ffem-nano", **DETECTOR_KWARGS)
    folder = tmp_path_factory.mktemp("model")
    card = save_model(folder, model, detector_card())
    return folder, model, card


def copy_of(folder, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_round_trip(saved):
    folder, model, card = saved
    assert {p.name for p in folder.iterdir()} >= {WEIGHTS_FILE, CARD_FILE, README_FILE}
    assert len(card.weights_sha256) == 64
    loaded, loaded_card = load_model(folder)
    assert loaded_card == card and not loaded.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    text = (folder / README_FILE).read_text()
    assert "tiny-detector" in text and "open, short" in text and card.weights_sha256 in text
    assert json.loads((folder / CARD_FILE).read_text())["cam_reference"] == {"low": 0.1, "high": 2.5, "per_class": {}}


def test_weights_are_never_unpickled(saved):
    folder, _, _ = saved
    assert (folder / WEIGHTS_FILE).read_bytes()[:8] != b"\x80\x02\x8a\nl\xfc\x9c"  # not a torch pickle
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in folder.iterdir())


def test_missing_weights(saved, tmp_path):
    folder = copy_of(saved[0], tmp_path)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelLoadError, match="weights.safetensors.*missing"):
        load_model(folder)


def test_truncated_weights(saved, tmp_path):
    folder = copy_of(saved[0], tmp_path)
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="weights.safetensors.*sha256"):
        load_model(folder)


def test_foreign_and_mismatched_weights_are_refused_even_with_a_matching_hash(saved, tmp_path):
    folder = copy_of(saved[0], tmp_path)
    other = build_model("wbam-ffem-nano", num_classes=3, input_mode="gray+ref")
    three_classes = detector_card(build_kwargs={"num_classes": 3, "input_mode": "gray+ref"})
    card = save_model(tmp_path / "other", other, three_classes)
    (folder / WEIGHTS_FILE).write_bytes((tmp_path / "other" / WEIGHTS_FILE).read_bytes())
    data = json.loads((folder / CARD_FILE).read_text())
    data["weights_sha256"] = card.weights_sha256  # someone "fixed" the hash: the shapes still disagree
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="has shape"):
        load_model(folder)

    classifier = build_model("cti-tiny", num_classes=2, in_chans=3)
    foreign = save_model(tmp_path / "cls", classifier, ModelCard(
        name="c", task="classification", architecture="cti-tiny", build_kwargs={"num_classes": 2, "in_chans": 3},
        classes=["a", "b"], input_size=(3, 64, 64)))
    (folder / WEIGHTS_FILE).write_bytes((tmp_path / "cls" / WEIGHTS_FILE).read_bytes())
    data["weights_sha256"] = foreign.weights_sha256
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="another network"):
        load_model(folder)


def test_not_a_safetensors_file(saved, tmp_path):
    import hashlib

    folder = copy_of(saved[0], tmp_path)
    junk = b"not safetensors at all"
    (folder / WEIGHTS_FILE).write_bytes(junk)
    data = json.loads((folder / CARD_FILE).read_text())
    data["weights_sha256"] = hashlib.sha256(junk).hexdigest()
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="not a valid safetensors"):
        load_model(folder)


def test_bad_cards(saved, tmp_path):
    folder = copy_of(saved[0], tmp_path)
    (folder / CARD_FILE).write_text("{\n  \"name\": ")
    with pytest.raises(ModelLoadError, match=r"card.json.*line 2"):
        load_card(folder)
    (folder / CARD_FILE).write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelLoadError, match="lacks required fields: task"):
        load_card(folder)
    with pytest.raises(ModelLoadError, match="no such model folder"):
        load_card(tmp_path / "nowhere")
    (folder / CARD_FILE).write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        load_card(folder)
    (folder / CARD_FILE).write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="not a JSON object"):
        load_card(folder)
    with pytest.raises(ValueError, match="input_mode"):
        detector_card(input_size=(3, 64, 64))


def test_prepare_input_letterbox_and_reference():
    card = detector_card()
    image = np.zeros((32, 64, 3), np.uint8)
    image[:, :, 0] = 255  # pure red: gray ~76
    reference = np.full((32, 64, 3), 255, np.uint8)
    prepared = prepare_input(image, card, reference)
    assert prepared.tensor.shape == (2, 64, 64) and prepared.tensor.dtype == torch.float32
    info = prepared.letterbox
    assert (info.scale, info.pad_y) == (1.0, 16)
    assert prepared.tensor[0, 32, 32].item() == pytest.approx(76 / 255, abs=2 / 255)
    assert prepared.tensor[1, 32, 32].item() == pytest.approx(1.0)
    assert prepared.tensor[1, 0, 0].item() == pytest.approx(114 / 255)  # padding
    with pytest.raises(ValueError, match="needs a reference"):
        prepare_input(image, card)


def test_prepare_input_resize_normalises_with_the_cards_mean_and_std():
    card = ModelCard(name="c", task="classification", architecture="cti-tiny",
                     build_kwargs={"num_classes": 2, "in_chans": 3}, classes=["a", "b"], input_size=(3, 16, 24))
    prepared = prepare_input(np.full((40, 50, 3), 128, np.uint8), card)
    assert prepared.tensor.shape == (3, 16, 24) and prepared.letterbox is None
    expected = (128 / 255 - card.preprocessing.mean[1]) / card.preprocessing.std[1]
    assert prepared.tensor[1].mean().item() == pytest.approx(expected, abs=1e-4)


def test_model_card_shows_fractions_as_percent_and_thresholds_as_they_are():
    from station.ml.cards import _metric_text

    assert _metric_text("map50", 0.9844) == "98.44 %"
    assert _metric_text("deeppcb_fscore_at_card_threshold", 0.9751) == "97.51 %"
    assert _metric_text("card_threshold", 0.3545) == "0.3545"
    assert _metric_text("deeppcb_best_threshold", 0.3545) == "0.3545"
    assert _metric_text("deeppcb_best_threshold_optimistic", 0.3545) == "0.3545"
    assert _metric_text("deeppcb_fscore_best_threshold_optimistic", 0.9751) == "97.51 %"
    assert _metric_text("deeppcb_per_class_map_at_card_threshold", 0.9751) == "97.51 %"


def test_cards_without_limitations_load_and_bad_limitations_are_refused(saved, tmp_path):
    folder = copy_of(saved[0], tmp_path)
    data = json.loads((folder / CARD_FILE).read_text())
    assert data.pop("limitations") == []
    (folder / CARD_FILE).write_text(json.dumps(data))
    assert load_card(folder).limitations == []  # a card written before the field existed
    for bad in ("one sentence", [1, 2]):
        (folder / CARD_FILE).write_text(json.dumps(data | {"limitations": bad}))
        with pytest.raises(ModelLoadError, match="limitations must be a list of strings"):
            load_card(folder)
    assert detector_card(limitations=["  Weak on lead defects. ", " "]).limitations == ["Weak on lead defects."]
