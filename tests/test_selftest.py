"""`station selftest` end to end, with tiny stand-ins for the bundled demo models."""

from __future__ import annotations

import json

from helpers_models import make_tiny_classifier, make_tiny_detector

from station.cli import main


def test_selftest_passes_every_stage_and_writes_a_verified_audit_entry(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STATION_ALLOW_UNAPPROVED_MODELS")  # approval is reported, not required
    models = tmp_path / "models"
    make_tiny_classifier(models / "cti-ic-material")
    make_tiny_detector(models / "wbam-ffem-ic")
    monkeypatch.setenv("STATION_MODELS", str(models))
    assert main(["selftest", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and [s["name"] for s in report["stages"]] == ["synth", "capture", "inference", "render", "audit"]
    assert "verified" in report["stages"][-1]["summary"]
    assert "not approved for use yet: tiny-material, tiny-defects" in report["stages"][2]["summary"]


def test_selftest_names_the_missing_model_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STATION_MODELS", str(tmp_path / "empty"))
    assert main(["selftest", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "FAIL inference" in out and "cti-ic-material" in out and "selftest FAILED" in out


def test_selftest_runs_a_template_recipe_with_the_frame_as_its_own_template(tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    make_tiny_detector(models / "wbam-ffem-deeppcb", input_mode="gray+ref")
    monkeypatch.setenv("STATION_MODELS", str(models))
    assert main(["selftest", "--device", "cpu", "--recipe", "Bare PCB (DeepPCB)", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"], report
