"""``station models compare``: two models on the same images, and whether the difference is real."""

from __future__ import annotations

import json

import pytest

from fixtures.training_data import make_folder_dataset, make_voc_dataset
from helpers_models import make_tiny_classifier, make_tiny_detector
from station.cli import main
from station.training.compare import compare_models, mcnemar_exact


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    # 1 of 6 discordant pairs on one side: 2 * (C(6,0) + C(6,1)) / 2^6 = 14 / 64
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    assert mcnemar_exact(5, 1) == mcnemar_exact(1, 5)
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)


def test_a_model_against_itself_is_no_real_difference(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=3, size=48)
    card = make_tiny_classifier(tmp_path / "a", size=48)
    make_tiny_classifier(tmp_path / "b", size=48, seed=0)
    # the folder's classes are the fixture's; the tiny model names the station's materials
    (tmp_path / "data2").mkdir()
    for index, folder in enumerate(sorted(p for p in data.iterdir() if p.is_dir())):
        folder.rename(tmp_path / "data2" / card.classes[index])
    result = compare_models(tmp_path / "a", tmp_path / "b", tmp_path / "data2", "folder", device="cpu")
    assert result.difference == 0 and not result.real and result.p_value == 1.0
    assert result.counts["only_a"] == result.counts["only_b"] == 0
    assert set(result.per_class) == set(card.classes)


def test_detectors_compare_by_paired_bootstrap_through_the_cli(tmp_path, capsys):
    data = make_voc_dataset(tmp_path / "voc", count=6, size=64)
    for name, seed in (("a", 0), ("b", 1)):
        make_tiny_detector(tmp_path / name, size=64, seed=seed, score=0.001)
    # the tiny detectors name the station's defect classes; relabel the fixture's boxes to them
    from station.synth import DEFECT_CLASSES

    for xml in (data / "Annotations").glob("*.xml"):
        text = xml.read_text()
        for index, name in enumerate(("blob", "hole", "line")):
            text = text.replace(f"<name>{name}</name>", f"<name>{DEFECT_CLASSES[index]}</name>")
        xml.write_text(text)
    report = tmp_path / "compare.json"
    assert main(["models", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--data", str(data), "--format", "voc",
                 "--resamples", "20", "--device", "cpu", "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "paired bootstrap over images: 95 % interval" in printed
    saved = json.loads(report.read_text(encoding="utf-8"))
    low, high = saved["interval"]
    assert low <= saved["difference"] <= high and saved["real"] == (not low <= 0 <= high)
