"""`station models list|info` and the generic profiling helpers behind it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from station.cli import main
from station.ml.cti import build
from station.ml.profile import count_gmacs, count_params, measure_latency_ms


def test_info_json_for_cti_tiny(capsys):
    assert main(["models", "info", "cti-tiny", "--json", "--runs", "1", "--warmup", "0"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "cti-tiny" and info["architecture"] == "cti"
    assert info["input_size"] == [3, 224, 224]
    assert isinstance(info["params"], int) and info["params"] == count_params(build("cti-tiny"))
    assert isinstance(info["gmacs"], float) and 0.05 < info["gmacs"] < 1.0
    assert isinstance(info["latency_ms"], float) and info["latency_ms"] > 0
    assert isinstance(info["threads"], int) and info["threads"] >= 1


def test_info_at_another_size_and_as_text(capsys):
    assert main(["models", "info", "cti-tiny", "--size", "96", "128", "--runs", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "cti-tiny (cti)" in out and "3x96x128" in out and "latency" in out
    assert main(["models", "info", "cti-tiny", "--json", "--size", "96", "128", "--runs", "1", "--warmup", "0"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == [3, 96, 128]
    assert info["gmacs"] == pytest.approx(count_gmacs(build("cti-tiny"), (3, 96, 128)))


def test_info_rejects_unknown_names_and_bad_options(capsys):
    assert main(["models", "info", "cti-huge"]) == 2
    assert "cti-huge" in capsys.readouterr().err
    assert main(["models", "info", "cti-tiny", "--runs", "0"]) == 2
    assert "--runs" in capsys.readouterr().err


def test_list_shows_configs_and_bundled_models(capsys, tmp_path, monkeypatch):
    (tmp_path / "cti-demo").mkdir()
    card = {"name": "CTI demo", "task": "classification", "architecture": "cti-tiny"}
    (tmp_path / "cti-demo" / "card.json").write_text(json.dumps(card))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.json").write_text("{not json")
    (tmp_path / "no-card").mkdir()
    monkeypatch.setenv("STATION_MODELS", str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("cti-paper", "cti-small", "cti-tiny", "cti-tiny-cnn-only"):
        assert name in out
    assert "cti-demo  (name CTI demo, task classification, config cti-tiny)" in out
    assert "  broken\n" in out
    assert "no-card" not in out


def test_list_says_which_bundled_models_are_approved(capsys, tmp_path, monkeypatch):
    from helpers_models import make_tiny_classifier
    from helpers_users import approve_models

    make_tiny_classifier(tmp_path / "approved")
    make_tiny_classifier(tmp_path / "pending", seed=1)
    approve_models(tmp_path / "approved")
    monkeypatch.setenv("STATION_MODELS", str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "  approved  (name tiny-material" in out and "    approved (entry #" in out
    assert "  pending  (name tiny-material" in out and "NOT approved for use" in out


def test_list_without_a_models_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STATION_MODELS", str(tmp_path / "missing"))
    assert main(["models", "list"]) == 0
    assert "(none)" in capsys.readouterr().out


def test_limitations_are_added_once_shown_in_the_model_card_and_cleared(capsys, tmp_path):
    from helpers_models import make_tiny_classifier

    from station.ml.cards import README_FILE, WEIGHTS_FILE, load_card

    folder = tmp_path / "material"
    make_tiny_classifier(folder)
    weights_before = (folder / WEIGHTS_FILE).read_bytes()
    assert main(["models", "limitations", str(folder)]) == 0
    assert "no known limitations" in capsys.readouterr().out

    faint = "Faint inclusions are sometimes called pitted_surface."
    assert main(["models", "limitations", str(folder), "--add", faint, "--add", "  Synthetic data only.  "]) == 0
    assert capsys.readouterr().out.splitlines() == [f"- {faint}", "- Synthetic data only."]
    assert main(["models", "limitations", str(folder), "--add", faint]) == 0  # no duplicate
    assert load_card(folder).limitations == [faint, "Synthetic data only."]
    text = (folder / README_FILE).read_text()
    assert "## Known limitations" in text and f"- {faint}" in text
    assert (folder / WEIGHTS_FILE).read_bytes() == weights_before

    assert main(["models", "limitations", str(folder), "--clear", "--add", "Only one."]) == 0
    assert load_card(folder).limitations == ["Only one."]
    assert main(["models", "limitations", str(folder), "--clear"]) == 0
    assert load_card(folder).limitations == []
    assert "Known limitations" not in (folder / README_FILE).read_text()


def test_limitations_of_a_folder_without_a_card_is_a_clear_error(capsys, tmp_path):
    assert main(["models", "limitations", str(tmp_path / "nowhere"), "--add", "x"]) == 2
    assert "no such model folder" in capsys.readouterr().err
    (tmp_path / "card.json").write_text("{not json")
    assert main(["models", "limitations", str(tmp_path)]) == 2
    assert "malformed JSON" in capsys.readouterr().err


# ---------------------------------------------------------------- station.ml.profile


class DictOutput(nn.Module):
    """A detector-like network: a conv whose forward returns a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self.norm(self.conv(x))}


def test_count_params_and_multiply_adds():
    model = DictOutput()
    assert count_params(model) == 8 * 3 * 9 + 8 + 8 + 8
    # one multiply-add per output element per kernel tap and input channel
    assert count_gmacs(model, (3, 10, 12)) == pytest.approx(8 * 3 * 9 * 10 * 12 / 1e9)


def test_latency_is_positive_and_restores_the_training_mode():
    model = DictOutput().train()
    latency = measure_latency_ms(model, (3, 16, 16), warmup=1, runs=3)
    assert latency > 0
    assert model.training
    count_gmacs(model, (3, 16, 16))
    assert model.training
    with pytest.raises(ValueError, match="runs"):
        measure_latency_ms(model, (3, 16, 16), runs=0)
    with pytest.raises(ValueError, match=r"\(3, 16\)"):
        count_gmacs(model, (3, 16))


def test_a_reader_that_goes_away_is_not_an_error(tmp_path, monkeypatch):
    """`station models list | head -1`: the pipe closes under the command; no traceback."""
    import os
    import sys

    class ClosedPipe:
        def __init__(self, fd: int) -> None:
            self.fd = fd

        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            return self.fd

    fd = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT)
    monkeypatch.setattr(sys, "stdout", ClosedPipe(fd))
    try:
        assert main(["models", "list"]) == 0
    finally:
        os.close(fd)
