"""``station bench latency``: the figures' shape, and a clear refusal when models are missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from station.capture.base import Frame
from station.cli import main
from station.inference import Engine
from station.inference_bench import measure, percentiles

from test_inference import _frames, _recipe, model_root  # noqa: F401  (fixtures)


class _Frames:
    """A finite stand-in source: the bench only calls read() and describe()."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._images = list(images)

    def read(self) -> Frame | None:
        if not self._images:
            return None
        return Frame(self._images.pop(0), 0.0, 0, "test")

    def describe(self) -> str:
        return "test frames"


def test_percentiles():
    assert percentiles([1.0, 2.0, 3.0, 4.0, 100.0]) == {"p50_ms": 3.0, "p95_ms": pytest.approx(80.8)}


def test_measure_reports_every_stage(model_root):  # noqa: F811
    engine = Engine(_recipe(model_root), device="cpu")
    figures = measure(engine, _Frames(_frames(4)), runs=3, warmup=1, want_attention=True, reference=None)
    assert set(figures["stages"]) == {"capture", "preprocess", "classifier", "detector", "cam", "render"}
    for values in [*figures["stages"].values(), figures["capture_to_result"], figures["capture_to_result_cpu"]]:
        assert set(values) == {"p50_ms", "p95_ms"} and 0 <= values["p50_ms"] <= values["p95_ms"]
    whole = figures["capture_to_result"]["p50_ms"]
    assert whole >= figures["stages"]["classifier"]["p50_ms"]
    with pytest.raises(RuntimeError, match="ran out of frames"):
        measure(engine, _Frames(_frames(1)), runs=2, warmup=0, want_attention=False, reference=None)


def test_missing_bundled_models_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STATION_MODELS", str(tmp_path))
    assert main(["bench", "latency", "--runs", "1", "--json"]) == 2
    error = capsys.readouterr().err
    assert "not installed" in error and "cti-ic-material" in error and "--random-init" in error
    assert main(["bench", "latency", "--recipe", "No such recipe"]) == 2
    assert "IC package (demo)" in capsys.readouterr().err


def test_json_report_from_the_demo_source(model_root, monkeypatch, capsys, tmp_path):  # noqa: F811
    import station.inference_bench as bench

    monkeypatch.setattr(bench, "random_init_recipe", lambda recipe, directory: _recipe(model_root))
    argv = ["bench", "latency", "--random-init", "--runs", "2", "--warmup", "1", "--threads", "1", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"].startswith("CPU") and report["attention"] is True and report["runs"] == 2
    assert set(report["stages"]) >= {"preprocess", "classifier", "detector", "cam", "render"}
    assert set(report["capture_to_result"]) == {"p50_ms", "p95_ms"}


def test_threads_are_set_for_the_bench_and_restored(model_root, monkeypatch, capsys):  # noqa: F811
    import torch

    import station.inference_bench as bench

    seen = []

    def fake_bench(recipe, args):
        seen.append(torch.get_num_threads())
        whole = {"p50_ms": 1.0, "p95_ms": 1.0}
        return {"device": "CPU", "recipe": recipe.name, "attention": True, "runs": 1, "threads": seen[-1],
                "stages": {}, "capture_to_result": whole, "capture_to_result_cpu": whole}

    monkeypatch.setattr(bench, "random_init_recipe", lambda recipe, directory: _recipe(model_root))
    monkeypatch.setattr(bench, "_bench", fake_bench)
    before = torch.get_num_threads()
    assert main(["bench", "latency", "--random-init", "--threads", "3"]) == 0
    assert seen == [3] and torch.get_num_threads() == before
    assert "capture-to-result" in capsys.readouterr().out


def test_model_latency_script_times_detectors_over_their_cards_views(model_root, tmp_path, capsys):  # noqa: F811
    import runpy

    folder = tmp_path / "four-views"
    shutil.copytree(model_root / "defects", folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | {"test_time_views": 4}))
    script = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "model_latency.py"))
    out = tmp_path / "latency.json"
    assert script["main"]([str(folder), str(model_root / "material"), "--rounds", "1", "--warmup", "0",
                           "--threads", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["views"] for row in rows] == [4, 1] and all(row["median_ms"] > 0 for row in rows)
    assert "| views |" in capsys.readouterr().out
    # throughput: a batch per call, under bf16 autocast
    assert script["main"]([str(model_root / "material"), "--batch", "3", "--amp", "bf16", "--rounds", "2",
                           "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    row = report["rows"][0]
    assert report["batch"] == 3 and report["amp"] == "bf16"
    assert row["images_per_s"] == pytest.approx(3000 / row["median_ms"]) and row["p90_ms"] >= row["median_ms"]
    assert "images/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script["main"]([str(model_root / "material"), "--batch", "0"])


def test_seed_spread_pools_evaluation_reports_of_the_same_images(tmp_path, capsys):
    import runpy

    script = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "seed_spread.py"))
    paths = []
    for seed, value in enumerate((0.97, 0.98, 0.99)):
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps({"data": "d", "subset": "test", "n_images": 10, "test_time_views": 4,
                                    "metrics": {"deeppcb_map": value, "map50": 0.5}}))
        paths.append(str(path))
    assert script["main"]([*paths, "--metrics", "deeppcb_map"]) == 0
    assert "| deeppcb_map | 98.00 ± 1.00 | 97.00 / 98.00 / 99.00 |" in capsys.readouterr().out
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"data": "d", "subset": "val", "n_images": 20, "metrics": {"deeppcb_map": 0.9}}))
    assert script["main"]([paths[0], str(other)]) == 1
    assert "different images" in capsys.readouterr().err
