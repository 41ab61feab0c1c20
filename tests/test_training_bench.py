"""torchvision peers behind our interfaces, and the measurements of `station bench` tables."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from station.ml.cards import ModelCard, Preprocessing, load_model, save_model
from station.ml.registry import build_model
from station.training.bench_tables import TableRow, count_flops, format_table, measure_fps


def test_classifier_peer_takes_our_build_arguments_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=4, in_chans=1)
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 4)
    assert model.default_input_size == (1, 224, 224) and model.get_submodule(model.cam_target_layer) is model.layer4
    card = ModelCard(name="r18", task="classification", architecture="resnet18",
                     build_kwargs={"num_classes": 4, "in_chans": 1}, classes=list("abcd"), input_size=(1, 64, 64),
                     input_mode="gray", preprocessing=Preprocessing(mean=(0.45,), std=(0.23,), grayscale=True))
    save_model(tmp_path, model, card)
    loaded, _ = load_model(tmp_path)
    x = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_detector_peer_speaks_the_wbam_ffem_interface():
    torch.manual_seed(0)
    model = build_model("fasterrcnn-mobilenet-v3-fpn", num_classes=3, input_mode="gray+ref")
    images = torch.rand(2, 2, 96, 96)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    model.train()
    losses = model.loss(model(images), targets)
    assert torch.isfinite(losses["loss"]) and losses["loss"].requires_grad
    found = model.predict(images, score_thresh=0.0, nms_iou=0.5, max_det=5)
    assert len(found) == 2 and model.training
    for item in found:
        assert item["boxes"].shape[1] == 4 and len(item["boxes"]) <= 5
        assert ((item["labels"] >= 0) & (item["labels"] < 3)).all()
        assert (item["boxes"] <= 96).all()
    with pytest.raises(ValueError, match="2, H, W"):
        model(torch.rand(1, 3, 96, 96))


def test_flops_and_fps():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False))
    # 4 output channels x 8 x 8 positions x 9 taps, 2 FLOPs per multiply-accumulate
    assert count_flops(conv, (1, 8, 8), "classification") == 2 * 4 * 8 * 8 * 9
    assert measure_fps(conv, (1, 8, 8), "classification", torch.device("cpu"), seconds=0.05) > 0


def test_a_detector_is_measured_over_its_test_time_views():
    torch.manual_seed(0)
    model = build_model("wbam-ffem-nano", num_classes=2, input_mode="gray")
    one, four = (count_flops(model, (1, 64, 64), "detection", views) for views in (1, 4))
    assert four == pytest.approx(4 * one)
    assert measure_fps(model, (1, 64, 64), "detection", torch.device("cpu"), seconds=0.01, views=4) > 0
    row = TableRow("wbam", {"map50": 0.5}, 10.0, 1.1, 5.0, 2.0, 3, extra={"test_time_views": 4})
    assert "| wbam, 4 test-time views | 50.00 |" in format_table([row], "detection", "detectors")


def test_only_the_detector_bench_takes_test_time_views():
    import argparse

    from station.training.bench_tables import configure

    detectors, table2 = argparse.ArgumentParser(), argparse.ArgumentParser()
    configure(detectors, "detectors")
    configure(table2, "table2")
    assert detectors.parse_args(["--data", "d", "--format", "voc", "--test-time-views", "4"]).test_time_views == 4
    with pytest.raises(SystemExit):
        detectors.parse_args(["--data", "d", "--format", "voc", "--test-time-views", "3"])
    with pytest.raises(SystemExit):
        table2.parse_args(["--data", "d", "--format", "neu-cls", "--test-time-views", "4"])


def test_table_formats():
    rows = [TableRow("cti-tiny", {"macro_precision": 0.9, "macro_recall": 0.8, "macro_f1": 0.85, "accuracy": 0.875},
                     fps=40.0, params_m=3.6, gflops=1.2, train_minutes=3.0, best_epoch=7)]
    table = format_table(rows, "classification", "Table 2")
    assert "| cti-tiny | 90.00 | 80.00 | 85.00 | 87.50 | 40.0 | 3.60 | 1.20 | 3.0 |" in table
    detection = format_table([TableRow("wbam", {"map50": 0.5, "deeppcb_map": 0.9}, 10.0, 1.1, 5.0, 2.0, 3)],
                             "detection", "detectors")
    assert "DeepPCB mAP" in detection and "| wbam | 50.00 |" in detection


def test_bundle_pairs_name_the_models_to_copy_into_models():
    import argparse

    import pytest

    from station.training.bench_tables import bundle_names

    args = argparse.Namespace(bundle=["wbam-ffem-nano=wbam-ffem-deeppcb", " cti-tiny = cti-neu "])
    assert bundle_names(args) == {"wbam-ffem-nano": "wbam-ffem-deeppcb", "cti-tiny": "cti-neu"}
    with pytest.raises(ValueError, match="CONFIG=NAME"):
        bundle_names(argparse.Namespace(bundle=["wbam-ffem-nano"]))


def test_a_time_budget_re_plans_the_schedule_to_finish_inside_it(tmp_path):
    from station.training.train import TrainOptions, _fit_schedule_to_time

    options = TrainOptions(task="detection", data=tmp_path, format="voc", model="wbam-ffem-nano", out=tmp_path,
                           epochs=30, max_time_s=600)
    assert _fit_schedule_to_time(options, epoch_train_s=60, epoch=1).epochs == 10
    assert _fit_schedule_to_time(options, epoch_train_s=10, epoch=1).epochs == 30  # fits already
    assert _fit_schedule_to_time(options, epoch_train_s=900, epoch=1).epochs == 1  # never below the epochs run
    # a slow first epoch (90 s) then a 30-s one: planned from the faster, counting the time spent
    assert _fit_schedule_to_time(options, epoch_train_s=30, epoch=2, done_s=120).epochs == 18
    unlimited = TrainOptions(task="detection", data=tmp_path, format="voc", model="wbam-ffem-nano", out=tmp_path,
                             epochs=30)
    assert _fit_schedule_to_time(unlimited, epoch_train_s=900, epoch=1).epochs == 30


def _fake_run(folder, seed, accuracy, subsets=None, ours="cti-tiny (cti-neu)"):
    folder.mkdir(parents=True)
    (folder / "split.json").write_text(json.dumps({"subsets": subsets or {"train": ["a"], "val": ["b"]}}))
    rows = [{"model": ours, "metrics": {"accuracy": accuracy, "macro_f1": accuracy - 0.01}},
            {"model": "resnet18", "metrics": {"accuracy": 0.9, "macro_f1": 0.89}}]
    (folder / "results.json").write_text(json.dumps({"bench": "table2", "data": "d", "format": "neu-cls",
                                                     "seed": seed, "rows": rows}))
    return folder


def test_repeat_pools_seeds_into_mean_and_sample_std(tmp_path, capsys):
    import argparse

    from station.training import bench_repeat

    runs = [_fake_run(tmp_path / f"s{seed}", seed, acc, ours="cti-tiny (cti-neu)" if seed == 0 else "cti-tiny")
            for seed, acc in ((0, 0.99), (1, 0.97), (2, 0.98))]
    assert bench_repeat.run(argparse.Namespace(runs=runs, out=tmp_path / "pooled")) == 0
    table = capsys.readouterr().out
    assert "| cti-tiny (cti-neu) | 98.00 ± 1.00 | 97.00 ± 1.00 |" in table
    assert "| resnet18 | 90.00 ± 0.00 |" in table
    pooled = json.loads((tmp_path / "pooled" / "results.json").read_text())
    assert pooled["seeds"] == [0, 1, 2] and pooled["summary"]["resnet18"]["accuracy"]["n"] == 3


def test_repeat_refuses_runs_on_another_split(tmp_path, capsys):
    import argparse

    from station.training import bench_repeat

    runs = [_fake_run(tmp_path / "s0", 0, 0.99), _fake_run(tmp_path / "s1", 1, 0.98, {"train": ["b"], "val": ["a"]})]
    assert bench_repeat.run(argparse.Namespace(runs=runs, out=None)) == 1
    assert "another split" in capsys.readouterr().err


def test_two_jobs_train_every_model_of_a_table_at_once_with_one_recipe(tmp_path, capsys):
    from fixtures.training_data import make_folder_dataset
    from station.cli import main

    root = make_folder_dataset(tmp_path / "shapes", per_class=6, size=32)
    out = tmp_path / "bench"
    argv = ["bench", "table2", "--data", str(root), "--format", "folder", "--budget", "smoke",
            "--models", "cti-tiny,resnet18", "--bundle", "cti-tiny=shapes-cti", "--imgsz", "32",
            "--rotations", "90,180,270", "--jobs", "2", "--workers", "0", "--threads", "1", "--quiet",
            "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["cti-tiny (shapes-cti)", "resnet18"]
    assert [row["config"] for row in rows] == ["cti-tiny", "resnet18"]
    for folder in ("shapes-cti", "resnet18"):
        card = json.loads((out / folder / "card.json").read_text())
        assert card["training"]["options"]["augment"]["rotations"] == [0.0, 90.0, 180.0, 270.0]
    assert "| cti-tiny (shapes-cti) |" in capsys.readouterr().out


def test_a_stopped_bench_resumes_each_model_and_does_not_retrain_a_finished_one(tmp_path, caplog):
    import logging

    from fixtures.training_data import make_folder_dataset
    from station.cli import main
    from station.training.train import TrainOptions, train

    root = make_folder_dataset(tmp_path / "shapes", per_class=6, size=32)
    out = tmp_path / "bench"
    argv = ["bench", "table2", "--data", str(root), "--format", "folder", "--budget", "smoke", "--imgsz", "32",
            "--models", "cti-tiny,resnet18", "--epochs", "2", "--cutmix", "0.5", "--workers", "0", "--threads", "1",
            "--quiet", "--out", str(out)]
    assert main([*argv, "--models", "cti-tiny"]) == 0  # the first model finished before the stop
    finished_weights = (out / "cti-tiny" / "weights.safetensors").read_bytes()
    # the second was stopped after its first epoch: its checkpoint is there, its card not yet
    recipe = json.loads((out / "cti-tiny" / "card.json").read_text())["training"]["options"]["augment"]
    from station.training.transforms import AugmentConfig

    augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items()})
    train(TrainOptions(task="classification", data=root, format="folder", model="resnet18", out=out / "resnet18",
                       epochs=2, imgsz=32, batch=8, workers=0, seed=0, split_file=out / "split.json", patience=1,
                       augment=augment, progress=False, keep_checkpoint=True))
    (out / "resnet18" / "card.json").unlink()
    state_file = out / "resnet18" / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state["epoch"], state["history"] = 1, state["history"][:1]
    state_file.write_text(json.dumps(state))

    with caplog.at_level(logging.INFO, logger="station"):
        assert main([*argv, "--resume"]) == 0
    assert "cti-tiny: trained already with this recipe" in caplog.text
    assert "resuming after epoch 1" in caplog.text
    assert (out / "cti-tiny" / "weights.safetensors").read_bytes() == finished_weights
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["cti-tiny", "resnet18"]
    assert all(row["train_minutes"] > 0 for row in rows)
    # a card made with another recipe is not taken for this run's
    assert main([*argv, "--resume", "--cutmix", "0.25"]) == 1


def test_a_bench_teacher_trains_first_and_teaches_the_others_only(tmp_path, caplog, capsys):
    import logging

    from fixtures.training_data import make_folder_dataset
    from station.cli import main

    root = make_folder_dataset(tmp_path / "shapes", per_class=6, size=32)
    out = tmp_path / "bench"
    argv = ["bench", "table2", "--data", str(root), "--format", "folder", "--budget", "smoke", "--imgsz", "32",
            "--models", "cti-tiny,resnet18", "--teacher", "resnet18", "--workers", "0", "--threads", "1",
            "--quiet", "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(row["model"], row["notes"]) for row in rows] == [("resnet18", ""), ("cti-tiny", "distilled from resnet18")]
    teacher = json.loads((out / "resnet18" / "card.json").read_text())
    student = json.loads((out / "cti-tiny" / "card.json").read_text())["training"]["options"]
    assert "distillation" not in teacher["training"]["options"]
    assert student["distillation"]["teacher"] == "resnet18"
    assert student["distillation"]["teacher_weights_sha256"] == teacher["weights_sha256"]
    with caplog.at_level(logging.INFO, logger="station"):
        assert main([*argv, "--resume"]) == 0
    assert "cti-tiny: trained already with this recipe" in caplog.text
    # a model taught otherwise (or not at all) is not taken for this run's
    assert main([*argv, "--resume", "--distill-temperature", "2"]) == 1
    assert main([*argv[:-2], "--teacher", "swin-t", "--out", str(out)]) == 2
    assert "--teacher swin-t is not in --models" in capsys.readouterr().err
