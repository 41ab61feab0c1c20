"""End to end on tiny data: `station train` writes a model folder that `station evaluate` loads
and whose validation figures it reproduces; --resume continues a run."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from fixtures.training_data import make_deeppcb_dataset, make_folder_dataset
from station.cli import main
from station.ml.cards import load_model
from station.training.evaluate import evaluate
from station.training.train import TrainingError, TrainOptions, train


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """cti-tiny, 1 epoch kept as a checkpoint, then resumed to 2 epochs; a corrupt image in the data."""
    root = make_folder_dataset(tmp_path_factory.mktemp("data") / "shapes", per_class=8, size=48)
    (root / "disc" / "disc_3.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    out = tmp_path_factory.mktemp("models") / "shapes-cti"
    options = TrainOptions(task="classification", data=root, format="folder", model="cti-tiny", out=out, epochs=1,
                           imgsz=48, batch=8, workers=0, seed=1, keep_checkpoint=True, progress=False)
    first = train(options)
    resumed = train(TrainOptions(**(vars(options) | {"epochs": 2, "resume": True, "keep_checkpoint": False})))
    return root, out, first, resumed


def test_classifier_training_writes_a_complete_model_folder(classifier_run):
    root, out, first, result = classifier_run
    assert {"weights.safetensors", "card.json", "MODEL_CARD.md", "split.json", "log.csv", "curves.png"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "checkpoint").exists()
    card = result.card
    assert card.task == "classification" and card.classes == ["bar", "disc", "square"]
    assert card.input_size == (3, 48, 48) and card.architecture == "cti-tiny"
    assert 0.05 <= card.temperature <= 20 and card.temperature != 1.0
    assert card.cam_reference is not None and card.cam_reference.high > card.cam_reference.low
    assert set(card.metrics) >= {"accuracy", "macro_f1"} and all(0 <= v <= 1 for v in card.metrics.values())
    assert card.data.content_sha256 and card.data.split_file == "split.json" and sum(card.data.counts.values()) == 23
    assert card.training.epochs == 2 and card.training.seed == 1 and card.training.wall_time_s > 0
    with open(out / "log.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]
    assert first.card.training.epochs == 1


def test_resume_rejects_a_different_run(classifier_run, tmp_path):
    root, *_ = classifier_run
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(TrainOptions(task="classification", data=root, format="folder", model="cti-tiny", out=tmp_path / "x",
                           epochs=1, resume=True, workers=0, progress=False))


def test_evaluate_reproduces_the_cards_validation_figures(classifier_run, tmp_path):
    root, out, _, result = classifier_run
    model, card = load_model(out)
    assert card == result.card
    evaluation = evaluate(out, root, subset="auto", out_dir=tmp_path / "eval", progress=False)
    assert evaluation.subset == "val" and evaluation.n_images == card.data.counts["val"]
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall"):
        assert evaluation.metrics()[key] == pytest.approx(card.metrics[key], abs=1e-6)
    assert 0 <= card.metrics["ece"] <= 1
    assert evaluation.calibration["ece"] == pytest.approx(card.metrics["ece"], abs=1e-6)
    assert {p.name for p in evaluation.files} >= {"confusion.csv", "confusion.png", "metrics.json"}
    everything = evaluate(out, root, subset="all", progress=False)
    assert everything.n_images == 23


def test_evaluate_cli_json_on_a_folder_the_model_never_saw(classifier_run, tmp_path, capsys):
    _, out, _, _ = classifier_run
    unseen = make_folder_dataset(tmp_path / "new-shapes", per_class=2, size=48, seed=7)
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(out), "--data", str(unseen), "--json", str(report),
                 "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert data["task"] == "classification" and data["n_images"] == 6 and data["subset"] == "all"
    assert {"accuracy", "macro_f1"} <= set(data["metrics"])
    assert all(0.0 <= value <= 1.0 for value in data["metrics"].values())
    assert "accuracy" in capsys.readouterr().out


def test_calibrate_refits_a_classifier_card_to_the_same_figures_and_refuses_views(classifier_run, tmp_path, capsys):
    _, out, _, result = classifier_run
    root = classifier_run[0]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main(["calibrate", "--model", str(copy), "--data", str(root)]) == 0
    _, card = load_model(copy)
    assert card.temperature == pytest.approx(result.card.temperature, rel=1e-4)
    assert card.metrics == pytest.approx(result.card.metrics)
    assert card.training.recalibration == f"station calibrate --model {copy} --data {root}"
    assert main(["calibrate", "--model", str(copy), "--data", str(root), "--views", "2"]) == 1
    assert "detectors only" in capsys.readouterr().err


def test_detector_on_tested_template_pairs_with_native_crops(tmp_path, capsys):
    root = make_deeppcb_dataset(tmp_path / "pcb", count=10, size=64)
    out = tmp_path / "pcb-detector"
    assert main(["train", "detector", "--data", str(root), "--format", "deeppcb", "--model", "wbam-ffem-nano",
                 "--epochs", "2", "--imgsz", "64", "--crop", "32", "--batch", "4", "--workers", "0",
                 "--out", str(out), "--quiet", "--licence", "research use only"]) == 0
    _, card = load_model(out)
    assert card.input_mode == "gray+ref" and card.input_size == (2, 64, 64)
    assert card.preprocessing.resize == "letterbox" and card.data.licence == "research use only"
    assert 0 < card.thresholds.score < 1 and card.thresholds.uncertain_confidence < card.thresholds.score
    assert {"map50", "map50_95", "deeppcb_map", "deeppcb_fscore_at_card_threshold"} <= set(card.metrics)
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(out), "--data", str(root), "--protocol", "deeppcb", "--json",
                 str(report), "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert data["task"] == "detection" and data["subset"] == "val" and data["n_images"] == card.data.counts["val"]
    for key in ("map50", "map75", "map90", "map50_95", "deeppcb_map", "deeppcb_fscore_at_card_threshold"):
        assert 0.0 <= data["metrics"][key] <= 1.0
        assert data["metrics"][key] == pytest.approx(card.metrics[key], abs=1e-6)
    assert (tmp_path / "eval" / "pr_curves.png").is_file()

    weights = (out / "weights.safetensors").read_bytes()
    assert main(["calibrate", "--model", str(out), "--data", str(root), "--views", "4"]) == 0
    _, calibrated = load_model(out)
    assert calibrated.test_time_views == 4 and (out / "weights.safetensors").read_bytes() == weights
    assert calibrated.training.recalibration.startswith("station calibrate --model")
    assert calibrated.training.command_line == card.training.command_line
    assert "4 dihedral views" in (out / "MODEL_CARD.md").read_text()
    assert main(["evaluate", "--model", str(out), "--data", str(root), "--protocol", "deeppcb", "--split", "val",
                 "--json", str(report), "--out", str(tmp_path / "eval4"), "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert data["test_time_views"] == 4
    for key in ("map50", "deeppcb_map", "deeppcb_fscore_at_card_threshold"):
        assert data["metrics"][key] == pytest.approx(calibrated.metrics[key], abs=1e-6)
    assert main(["calibrate", "--model", str(out), "--data", str(tmp_path / "nowhere")]) == 1
    assert "station calibrate:" in capsys.readouterr().err


def test_a_time_budget_plans_a_whole_schedule_and_the_card_says_so(tmp_path):
    root = make_folder_dataset(tmp_path / "shapes", per_class=6, size=32)
    result = train(TrainOptions(task="classification", data=root, format="folder", model="cti-tiny",
                                out=tmp_path / "budget", epochs=10, imgsz=32, batch=8, workers=0, seed=0,
                                progress=False, max_time_s=1e-6))
    options = result.card.training.options
    assert result.card.training.epochs == 1  # the plan shrank to what fits, so the run ended with its schedule
    assert options["epochs_asked"] == 10 and options["epochs_planned"] == 1


def test_training_with_test_time_views_fits_the_card_through_them(tmp_path):
    root = make_deeppcb_dataset(tmp_path / "pcb", count=6, size=64)
    out = tmp_path / "viewed"
    assert main(["train", "detector", "--data", str(root), "--format", "deeppcb", "--model", "wbam-ffem-nano",
                 "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--test-time-views", "2",
                 "--out", str(out), "--quiet"]) == 0
    _, card = load_model(out)
    assert card.test_time_views == 2 and "--test-time-views 2" in card.training.command_line
    evaluation = evaluate(out, root, subset="val", protocol="deeppcb", progress=False)
    assert evaluation.views == 2
    assert evaluation.metrics()["deeppcb_map"] == pytest.approx(card.metrics["deeppcb_map"], abs=1e-6)


def test_detector_trains_with_mosaic_mixup_copy_paste_and_multiscale_and_resumes_with_them(tmp_path, capsys, caplog):
    from fixtures.training_data import make_voc_dataset

    root = make_voc_dataset(tmp_path / "voc", count=12, size=64)
    out = tmp_path / "mixed"
    common = ["train", "detector", "--data", str(root), "--format", "voc", "--model", "wbam-ffem-nano",
              "--imgsz", "64", "--batch", "4", "--workers", "0", "--out", str(out), "--quiet", "--keep-checkpoint",
              "--mixup", "0.5", "--copy-paste", "0.5", "--multiscale", "0.5", "--close-mosaic", "1",
              "--saturation", "0"]
    assert main(common + ["--mosaic", "1", "--epochs", "1"]) == 0
    # the augmentation is part of the resume key: a mosaic checkpoint does not continue without mosaic
    assert main(common + ["--epochs", "2", "--resume"]) == 1
    assert "--resume: the checkpoint was made with" in capsys.readouterr().err
    with caplog.at_level("INFO", logger="station.training"):
        assert main(common + ["--mosaic", "1", "--epochs", "2", "--resume"]) == 0
    assert "the last 1 epochs train without mosaic" in caplog.text  # epoch 2 of 2 is the closed one
    _, card = load_model(out)
    augment = card.training.options["augment"]
    assert augment["mosaic"] == 1 and augment["mixup"] == 0.5 and augment["copy_paste"] == 0.5
    assert augment["multiscale"] == 0.5 and augment["close_mosaic"] == 1 and augment["saturation"] == 0
    assert card.training.epochs == 2 and {"map50", "map50_95"} <= set(card.metrics)


def test_sample_mixing_refuses_native_crops(tmp_path, capsys):
    root = make_deeppcb_dataset(tmp_path / "pcb", count=10, size=64)
    assert main(["train", "detector", "--data", str(root), "--format", "deeppcb", "--imgsz", "64", "--crop", "32",
                 "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "x"), "--quiet", "--mosaic", "1"]) == 1
    assert "drop --crop" in capsys.readouterr().err


def test_a_resumed_run_trains_exactly_as_an_uninterrupted_one(tmp_path):
    """Batches and augmentations come from (seed, epoch) alone, so stopping after epoch 1 and
    resuming changes no weight, with a loading process (persistent workers) and mosaic on."""
    import torch
    from safetensors.torch import load_file

    from fixtures.training_data import make_voc_dataset

    root = make_voc_dataset(tmp_path / "voc", count=12, size=64)

    def run(out, epochs, *extra):
        assert main(["train", "detector", "--data", str(root), "--format", "voc", "--imgsz", "64", "--batch", "4",
                     "--workers", "1", "--out", str(out), "--quiet", "--keep-checkpoint", "--mosaic", "0.5",
                     "--epochs", str(epochs), *extra]) == 0
        return load_file(out / "checkpoint" / "model.safetensors")

    straight = run(tmp_path / "straight", 2)
    run(tmp_path / "stopped", 1)
    resumed = run(tmp_path / "stopped", 2, "--resume")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)


def test_a_classifier_trains_with_cutmix_and_mixup_and_resumes_exactly(tmp_path, caplog):
    import logging

    import torch
    from safetensors.torch import load_file

    root = make_folder_dataset(tmp_path / "shapes", per_class=6, size=32)

    def run(out, epochs, *extra):
        assert main(["train", "classifier", "--data", str(root), "--format", "folder", "--model", "cti-tiny",
                     "--imgsz", "32", "--batch", "4", "--workers", "0", "--out", str(out), "--quiet",
                     "--keep-checkpoint", "--mixup", "0.4", "--cutmix", "0.4",
                     "--epochs", str(epochs), *extra]) == 0
        return load_file(out / "checkpoint" / "model.safetensors")

    straight = run(tmp_path / "straight", 2)
    run(tmp_path / "stopped", 1)
    resumed = run(tmp_path / "stopped", 2, "--resume")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)
    with caplog.at_level(logging.INFO, logger="station"):
        run(tmp_path / "closed", 3, "--close-mosaic", "1")
    assert "epoch 3: the last 1 epochs train without mixup and cutmix" in caplog.text
    augment = json.loads((tmp_path / "closed" / "card.json").read_text())["training"]["options"]["augment"]
    assert (augment["mixup"], augment["cutmix"], augment["close_mosaic"]) == (0.4, 0.4, 1)


def test_mixing_options_belong_to_their_task(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "shapes", per_class=6, size=32)
    base = ["--data", str(root), "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "x"), "--quiet"]
    assert main(["train", "classifier", "--format", "folder", *base, "--mosaic", "0.5"]) != 0
    assert "detector options" in capsys.readouterr().err
    assert main(["train", "classifier", "--format", "folder", *base, "--mixup", "0.7", "--cutmix", "0.7"]) != 0
    assert "at most 1" in capsys.readouterr().err
    assert main(["train", "detector", "--format", "voc", *base, "--cutmix", "0.5"]) != 0
    assert "classifier option" in capsys.readouterr().err


def test_a_checkpoint_from_before_an_augmentation_existed_resumes_with_it_off(classifier_run, tmp_path):
    """A run stopped by an older station resumes: an augmentation added since was off in it."""
    root, _, first, _ = classifier_run
    out = tmp_path / "old"
    options = TrainOptions(task="classification", data=root, format="folder", model="cti-tiny", out=out, epochs=1,
                           imgsz=48, batch=8, workers=0, seed=1, keep_checkpoint=True, progress=False)
    train(options)
    state_file = out / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    del state["options"]["augment"]["cutmix"]
    state_file.write_text(json.dumps(state))
    resumed = train(TrainOptions(**(vars(options) | {"epochs": 2, "resume": True})))
    assert resumed.card.training.epochs == 2


def test_fine_tuning_starts_from_a_model_and_records_its_parent(classifier_run, tmp_path):
    import torch

    root, parent_dir, _, parent_result = classifier_run
    two_classes = tmp_path / "two"
    shutil.copytree(root, two_classes)
    shutil.rmtree(two_classes / "square")
    out = tmp_path / "tuned"
    assert main(["train", "classifier", "--init", str(parent_dir), "--data", str(two_classes), "--format", "folder",
                 "--epochs", "1", "--imgsz", "48", "--batch", "8", "--workers", "0", "--lr", "0", "--warmup", "0",
                 "--no-ema", "--out", str(out), "--quiet"]) == 0
    model, card = load_model(out)
    parent = card.training.parent
    assert card.architecture == "cti-tiny" and card.classes == ["bar", "disc"]
    assert parent["name"] == parent_result.card.name and parent["weights_sha256"] == parent_result.card.weights_sha256
    assert parent["reinitialised"] and all(key.startswith("head.") for key in parent["reinitialised"])
    assert "fine-tuned from `shapes-cti`" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    parent_model, _ = load_model(parent_dir)
    # with a zero learning rate the backbone's parameters are the parent's (batch-norm statistics still move)
    ours, theirs = dict(model.named_parameters()), dict(parent_model.named_parameters())
    kept = [key for key in ours if key not in parent["reinitialised"]]
    assert kept and all(torch.equal(ours[key], theirs[key]) for key in kept)


def test_fine_tuning_refuses_another_architecture(classifier_run, tmp_path, capsys):
    root, parent_dir, _, _ = classifier_run
    assert main(["train", "classifier", "--init", str(parent_dir), "--model", "cti-tiny-dwconv", "--data", str(root),
                 "--format", "folder", "--epochs", "1", "--imgsz", "48", "--workers", "0", "--out",
                 str(tmp_path / "x"), "--quiet"]) == 1
    assert "is a 'cti-tiny', this run trains 'cti-tiny-dwconv'" in capsys.readouterr().err


def test_fine_tuning_keeps_the_parents_class_order(classifier_run, tmp_path):
    """A folder dataset lists its classes sorted; the parent may name them in another order: the
    head's rows must stay with their classes, so the run takes the parent's order."""
    import json

    import torch

    root, parent_dir, _, _ = classifier_run
    card_path = parent_dir / "card.json"
    reordered = tmp_path / "parent"
    shutil.copytree(parent_dir, reordered)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["classes"] = list(reversed(card["classes"]))  # same names, another order
    (reordered / "card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    out = tmp_path / "tuned"
    assert main(["train", "classifier", "--init", str(reordered), "--data", str(root), "--format", "folder",
                 "--epochs", "1", "--imgsz", "48", "--batch", "8", "--workers", "0", "--lr", "0", "--warmup", "0",
                 "--no-ema", "--out", str(out), "--quiet"]) == 0
    model, tuned = load_model(out)
    assert tuned.classes == card["classes"] and not tuned.training.parent["reinitialised"]
    parent_model, _ = load_model(reordered)
    theirs = dict(parent_model.named_parameters())
    assert all(torch.equal(tensor, theirs[key]) for key, tensor in model.named_parameters())


def test_a_classifier_distils_from_a_teacher_records_it_and_resumes_exactly(classifier_run, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    root, teacher_dir, _, teacher = classifier_run

    def run(out, epochs, *extra):
        return main(["train", "classifier", "--data", str(root), "--format", "folder", "--model", "cti-tiny-dwconv",
                     "--imgsz", "48", "--batch", "8", "--workers", "0", "--out", str(out), "--quiet",
                     "--keep-checkpoint", "--mixup", "0.5", "--teacher", str(teacher_dir),
                     "--distill-weight", "0.7", "--distill-temperature", "3", "--epochs", str(epochs), *extra])

    assert run(tmp_path / "straight", 2) == 0
    assert run(tmp_path / "stopped", 1) == 0
    assert run(tmp_path / "stopped", 2, "--resume") == 0
    straight = load_file(tmp_path / "straight" / "checkpoint" / "model.safetensors")
    resumed = load_file(tmp_path / "stopped" / "checkpoint" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)
    taught = json.loads((tmp_path / "straight" / "card.json").read_text())["training"]["options"]["distillation"]
    assert taught == {"teacher": teacher.card.name, "teacher_architecture": "cti-tiny",
                      "teacher_weights_sha256": teacher.card.weights_sha256, "weight": 0.7, "temperature": 3.0}
    # the distilled run is not the same run as one without a teacher
    assert main(["train", "classifier", "--data", str(root), "--format", "folder", "--model", "cti-tiny-dwconv",
                 "--imgsz", "48", "--batch", "8", "--workers", "0", "--out", str(tmp_path / "stopped"), "--quiet",
                 "--mixup", "0.5", "--epochs", "3", "--resume"]) == 1
    assert "--resume: the checkpoint was made with" in capsys.readouterr().err
    # a teacher that saw another input is refused, not silently fed inputs unlike its own
    assert run(tmp_path / "other-size", 1, "--imgsz", "32") == 1
    assert "another input size" in capsys.readouterr().err
    assert run(tmp_path / "heavy", 1, "--distill-weight", "1.5") == 1
    assert "must be in (0, 1]" in capsys.readouterr().err


def test_distillation_loss_is_zero_for_a_student_that_matches_its_teacher():
    import torch

    from station.training.distillation import distillation_loss

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    assert float(distillation_loss(logits, logits, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(-logits, logits, 4.0)) > 0.0
