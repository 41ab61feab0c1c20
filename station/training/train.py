"""``station train``'s engine: one loop for classifiers and detectors.

Data -> split file -> model from the registry -> AdamW with warm-up and cosine decay, an EMA of
the weights, mixed precision on CUDA -> per-epoch validation, early stopping, resumable
checkpoints (safetensors + JSON), CSV log and PNG curves -> calibration on validation
(temperature, detection threshold, CAM range) -> ``models/<name>/`` with the card.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from station.devices import autocast, describe_device, resolve_device
from station.ml.cards import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_MODES,
    DataInfo,
    ModelCard,
    Preprocessing,
    Thresholds,
    TrainingInfo,
    load_card,
    load_model,
    save_model,
    state_dict_tensors,
)
from station.ml.registry import build_model
from station.training import plots
from station.training.calibration import calibrate_card
from station.training.datasets import DatasetError, DatasetIndex, read_dataset, task_of
from station.training.evaluate import (
    ClassifierOutputs,
    DetectorOutputs,
    run_classifier,
    run_detector,
)
from station.training.deeppcb import deeppcb_metrics
from station.training.distillation import Distillation, DistillationError, distillation_loss, load_teacher
from station.training.loaders import ClassificationData, DetectionData, EpochSampler, channel_parts, make_loader
from station.training.metrics import classification_metrics, detection_metrics, negative_log_likelihood
from station.training.splits import Split, dataset_split, make_split
from station.training.transforms import (
    ClassifierBatchMixing,
    AugmentConfig,
    classification_train_transform,
    default_augment,
    detection_train_transform,
    multiscale_side,
    resize_batch,
)

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
VAL_METRICS = {
    "classification": ("accuracy", "macro_f1"),
    "detection": ("map50", "map50_95", "deeppcb_map"),
}
GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)  # ImageNet's channel means, averaged
EMA_DECAY = 0.999
EMA_RAMP_UPDATES = 2000.0  # the decay ramps up over the first updates (as in YOLOv5's ModelEMA)
GRADIENT_CLIP = 10.0  # max gradient norm: guards the first steps of a from-scratch detector


@dataclass
class TrainOptions:
    task: str  # "classification" | "detection"
    data: Path
    format: str
    model: str  # registry config name
    out: Path
    epochs: int = 50
    imgsz: int | None = None  # square input side; default: the model's default input size
    batch: int = 16
    device: str = "auto"
    seed: int = 0
    split_file: Path | None = None  # read when it exists, else written there
    split_from: str = "auto"  # a new split: "dataset" (its own lists), "random", "auto" (the dataset's when it has one)
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    resume: bool = False
    init: Path | None = None  # a model folder whose weights start the run (fine-tuning); None: random
    patience: int = 20  # epochs without a better validation metric before stopping
    workers: int = 2
    crop: int | None = None  # detection: train on random native-resolution crops of this side
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    ema: bool = True
    amp: str = "auto"  # "auto" (CUDA only), "bf16" (also on the CPU), "off"
    input_mode: str = "auto"
    augment: AugmentConfig | None = None  # default: transforms.default_augment(task)
    build_kwargs: dict[str, Any] = field(default_factory=dict)  # config overrides (ablation switches)
    val_metric: str | None = None  # default: accuracy / map50 (deeppcb_map for DeepPCB data)
    val_every: int = 1
    test_time_views: int = 1  # detector: dihedral views the card's threshold and metrics are fitted with
    name: str | None = None  # card name; default: the out folder's name
    description: str = ""
    licence: str = ""
    strict: bool = False  # any data problem stops training
    keep_checkpoint: bool = False
    max_time_s: float | None = None  # stop after the epoch that passes this much training time
    distillation: Distillation | None = None  # classification: a trained teacher's soft targets join the loss
    command_line: str = ""
    progress: bool = True


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float | None
    val_metric: float | None
    lr: float
    epoch_s: float
    metrics: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "train_loss": self.train_loss, "val_loss": self.val_loss,
                "val_metric": self.val_metric, "lr": self.lr, "epoch_s": self.epoch_s} | self.metrics


@dataclass
class TrainResult:
    out_dir: Path
    card: ModelCard
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    wall_time_s: float


class TrainingError(RuntimeError):
    pass


# --- setup --------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def choose_input_mode(options: TrainOptions, index: DatasetIndex) -> str:
    mode = options.input_mode
    if mode == "auto":
        mode = "gray+ref" if options.task == "detection" and index.has_reference else "rgb"
    if mode not in INPUT_MODES:
        raise TrainingError(f"unknown input mode {mode!r}; choose from auto, {', '.join(INPUT_MODES)}")
    if INPUT_MODES[mode][1] and not index.has_reference:
        raise TrainingError(f"input mode {mode!r} needs reference images; {index.format} data at {index.root} has none")
    if options.task == "classification" and INPUT_MODES[mode][1]:
        raise TrainingError("classifiers take 'rgb' or 'gray' input")
    return mode


def card_skeleton(options: TrainOptions, index: DatasetIndex, input_mode: str, imgsz: int) -> ModelCard:
    channels = sum(INPUT_MODES[input_mode])
    parts = channel_parts(input_mode)
    if options.task == "classification":
        build_kwargs = {"num_classes": len(index.classes), "in_chans": channels}
        mean = IMAGENET_MEAN if channels == 3 else GRAY_MEAN
        std = IMAGENET_STD if channels == 3 else GRAY_STD
        preprocessing = Preprocessing(resize="resize", mean=mean, std=std, grayscale=input_mode == "gray")
        thresholds = Thresholds()
    else:
        build_kwargs = {"num_classes": len(index.classes), "input_mode": input_mode}
        # detectors see 0..1 intensities; per part: the image and its reference alike
        preprocessing = Preprocessing(resize="letterbox", mean=(0.0,) * channels, std=(1.0,) * channels,
                                      grayscale=parts[0] == 1)
        thresholds = Thresholds(score=0.25, nms_iou=0.5, uncertain_confidence=0.125, max_det=100)
    return ModelCard(
        name=options.name or options.out.name,
        task=options.task,
        architecture=options.model,
        build_kwargs=build_kwargs | options.build_kwargs,
        classes=list(index.classes),
        input_size=(channels, imgsz, imgsz),
        input_mode=input_mode,
        preprocessing=preprocessing,
        thresholds=thresholds,
        test_time_views=options.test_time_views,
    )


def _input_side(options: TrainOptions, model: nn.Module) -> int:
    side = options.imgsz or int(getattr(model, "default_input_size", (0, 224, 224))[-1])
    stride = int(getattr(model, "max_stride", 1))
    if side % stride:
        rounded = math.ceil(side / stride) * stride
        log.warning("--imgsz %d is not a multiple of the detector's stride %d; using %d", side, stride, rounded)
        side = rounded
    if options.crop is not None and options.crop % stride:
        raise TrainingError(f"--crop {options.crop} must be a multiple of the detector's stride {stride}")
    return side


def load_or_make_split(options: TrainOptions, index: DatasetIndex) -> Split:
    path = options.split_file
    if path is not None and Path(path).is_file():
        split = Split.load(path)
        for warning in split.check(index):
            log.warning("split %s: %s", path, warning)
        if split.classes != list(index.classes):
            raise TrainingError(f"split {path} was made for classes {split.classes}, "
                                f"the data has {list(index.classes)}")
        return split
    split = None
    if options.split_from in ("auto", "dataset"):
        split = dataset_split(index, seed=options.seed, val=options.val_fraction)
        if split is None and options.split_from == "dataset":
            raise TrainingError(f"{index.root} ships no split of its own ({index.format}); use --split-from random")
    if split is not None:
        log.info("using the dataset's own split (%s)", split.source.removeprefix("dataset: "))
    else:
        split = make_split(index, seed=options.seed, val=options.val_fraction, test=options.test_fraction)
        log.info("made a random stratified split (seed %d, val %.2f, test %.2f)", options.seed,
                 options.val_fraction, options.test_fraction)
    if path is not None:
        split.save(path)
        log.info("wrote split file %s", path)
    return split


# --- EMA, optimizer, schedule ---------------------------------------------------------------


def make_ema(model: nn.Module) -> AveragedModel:
    def ramped_ema(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        decay = EMA_DECAY * (1 - math.exp(-float(num_averaged + 1) / EMA_RAMP_UPDATES))
        for mean, value in zip(averaged, current, strict=True):
            if mean.is_floating_point():
                mean.lerp_(value, 1 - decay)
            else:  # integer buffers (BatchNorm's batch counter) are copied
                mean.copy_(value)

    return AveragedModel(model, multi_avg_fn=ramped_ema, use_buffers=True)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; no decay on biases and normalisation weights (1-D tensors) or learnable scalars."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def learning_rate(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up, then cosine decay to 1 % of ``base_lr``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


# --- checkpoints (safetensors + JSON: nothing is pickled) -----------------------------------


def _optimizer_split(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


@dataclass
class Checkpoint:
    epoch: int  # last completed epoch
    step: int
    best_metric: float
    best_epoch: int
    epochs_without_improvement: int
    history: list[dict[str, Any]]
    train_time_s: float  # in the training loop only
    wall_time_s: float  # the whole run, over every --resume
    options: dict[str, Any]
    scaler: dict[str, Any] | None = None


def save_checkpoint(folder: Path, model: nn.Module, ema: AveragedModel | None, optimizer: torch.optim.Optimizer,
                    checkpoint: Checkpoint) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(state_dict_tensors(model), folder / "model.safetensors")
    if ema is not None:
        save_file(state_dict_tensors(ema), folder / "ema.safetensors")
    tensors, meta = _optimizer_split(optimizer)
    save_file(tensors | {"rng.torch": torch.get_rng_state()}, folder / "optimizer.safetensors")
    state = asdict(checkpoint) | {"optimizer": meta}
    temporary = folder / "state.json.tmp"
    temporary.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
    temporary.replace(folder / "state.json")  # written last: a complete checkpoint has a state.json


def load_checkpoint(folder: Path, model: nn.Module, ema: AveragedModel | None,
                    optimizer: torch.optim.Optimizer) -> Checkpoint:
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    model.load_state_dict(load_file(folder / "model.safetensors"))
    if ema is not None and (folder / "ema.safetensors").is_file():
        ema.load_state_dict(load_file(folder / "ema.safetensors"))
    tensors = load_file(folder / "optimizer.safetensors")
    rng = tensors.pop("rng.torch", None)
    optimizer.load_state_dict(_optimizer_join(tensors, state.pop("optimizer")))
    if rng is not None:
        torch.set_rng_state(rng)
    return Checkpoint(**state)


# --- the loop -------------------------------------------------------------------------------


def _resume_key(options: TrainOptions) -> dict[str, Any]:
    """Options that must match for --resume to continue the same run."""
    return {"task": options.task, "model": options.model, "format": options.format, "data": str(options.data),
            "imgsz": options.imgsz, "batch": options.batch, "crop": options.crop, "seed": options.seed,
            "build_kwargs": options.build_kwargs, "init": str(options.init) if options.init is not None else None,
            "augment": json.loads(json.dumps(asdict(options.augment or default_augment(options.task))))} | (
        {"distillation": _distillation_key(options.distillation)} if options.distillation is not None else {})


def _distillation_key(distillation: Distillation) -> dict[str, Any]:
    return {"teacher_dir": str(distillation.teacher_dir), "weight": distillation.weight,
            "temperature": distillation.temperature}


def _default_metric(options: TrainOptions) -> str:
    if options.val_metric is not None:
        if options.val_metric not in VAL_METRICS[options.task]:
            raise TrainingError(f"--val-metric {options.val_metric} is not one of {VAL_METRICS[options.task]}")
        return options.val_metric
    if options.task == "classification":
        return "accuracy"
    return "deeppcb_map" if options.format == "deeppcb" else "map50"


@dataclass
class _Setup:
    """What a run is made of, before its first step."""

    index: DatasetIndex
    split: Split
    card: ModelCard  # the skeleton: calibration and provenance are added at the end
    model: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    augment: AugmentConfig
    metric_name: str
    closed_loader: Callable[[], DataLoader] | None = None  # the training loader without sample mixing
    batch_mixing: ClassifierBatchMixing | None = None  # classification: CutMix / MixUp of whole batches
    parent: dict[str, Any] = field(default_factory=dict)  # the --init model: name, weights sha256, what was reset
    teacher: nn.Module | None = None  # the frozen distillation teacher
    distillation: dict[str, Any] = field(default_factory=dict)  # the teacher's name, weights sha256, weight, T


def initialise_from(model: nn.Module, parent_dir: Path, architecture: str) -> dict[str, Any]:
    """Copy the weights of the model in ``parent_dir`` into ``model`` (fine-tuning). Tensors whose
    shape differs (the head, when the classes differ) keep their random initialisation; the log and
    the returned record say which."""
    parent, parent_card = load_model(parent_dir, "cpu")
    if parent_card.architecture != architecture:
        raise TrainingError(f"--init {parent_dir} is a {parent_card.architecture!r}, this run trains {architecture!r}")
    ours, theirs = model.state_dict(), parent.state_dict()
    reset = sorted(key for key in ours if key not in theirs or theirs[key].shape != ours[key].shape)
    model.load_state_dict({key: theirs[key] for key in ours if key not in reset} | {k: ours[k] for k in reset})
    log.info("fine-tuning from %s (weights sha256 %s…): %d of %d tensors loaded%s", parent_card.name,
             parent_card.weights_sha256[:12], len(ours) - len(reset), len(ours),
             f"; {len(reset)} left at random initialisation because their shapes differ "
             f"(classes {parent_card.classes} -> {model_classes_note(model)}): {', '.join(reset)}" if reset else "")
    return {"name": parent_card.name, "weights_sha256": parent_card.weights_sha256, "classes": list(parent_card.classes),
            "reinitialised": reset}


def _in_parent_class_order(index: DatasetIndex, parent_dir: Path) -> DatasetIndex:
    """A dataset naming the parent's classes in another order (a folder dataset sorts them) takes
    the parent's order, so that the head's row for "plastic" stays plastic's."""
    parent_classes = load_card(parent_dir).classes
    if list(parent_classes) == list(index.classes) or sorted(parent_classes) != sorted(index.classes):
        return index
    log.info("classes in the order of the --init model: %s (the dataset listed %s)", list(parent_classes),
             list(index.classes))
    return index.in_class_order(parent_classes)


def model_classes_note(model: nn.Module) -> str:
    count = getattr(model, "num_classes", None)
    return f"{count} classes" if count is not None else "new classes"


def _report_problems(index: DatasetIndex, strict: bool) -> None:
    log.info("%s", index.summary())
    for problem in index.problems[:30]:
        log.warning("data problem: %s", problem)
    if len(index.problems) > 30:
        log.warning("... and %d more data problems", len(index.problems) - 30)
    if strict and index.problems:
        raise DatasetError(f"{len(index.problems)} data problems and --strict given; first: {index.problems[0]}")


def _set_up(options: TrainOptions, out: Path) -> _Setup:
    index = read_dataset(options.data, options.format)
    _report_problems(index, options.strict)
    if options.init is not None:
        index = _in_parent_class_order(index, options.init)
    split = load_or_make_split(options, index)
    copy = out / "split.json"  # the card names the copy beside the weights
    if split.path is None or split.path.resolve() != copy.resolve():
        split.save(copy)
    log.info("split (seed %d):\n%s", split.seed, split.describe(index))
    train_samples, val_samples = index.subset(split.keys("train")).samples, index.subset(split.keys("val")).samples
    if not train_samples or not val_samples:
        raise TrainingError(f"the split leaves {len(train_samples)} training and {len(val_samples)} validation "
                            "images; both must be non-empty")

    closed_loader, batch_mixing = None, None
    input_mode = choose_input_mode(options, index)
    channels = sum(INPUT_MODES[input_mode])
    size_kwargs = {"in_chans": channels} if options.task == "classification" else {"input_mode": input_mode}
    model = build_model(options.model, num_classes=len(index.classes), **(size_kwargs | options.build_kwargs))
    parent = initialise_from(model, options.init, options.model) if options.init is not None else {}
    imgsz = _input_side(options, model)
    card = card_skeleton(options, index, input_mode, imgsz)
    augment = options.augment or default_augment(options.task)
    parts = channel_parts(input_mode)
    teacher, distillation = None, {}
    if options.distillation is not None:
        if options.task != "classification":
            raise TrainingError("distillation is for classifiers")
        try:
            teacher, distillation = load_teacher(options.distillation, card)
        except DistillationError as exc:
            raise TrainingError(str(exc)) from None
        log.info("distilling from %s (weight %.2f, temperature %.1f)", distillation["teacher"],
                 distillation["weight"], distillation["temperature"])
    if options.task == "classification":
        train_set: Dataset = ClassificationData(train_samples, card,
                                                classification_train_transform((imgsz, imgsz), parts, augment))
        val_set: Dataset = ClassificationData(val_samples, card)
        val_batch = options.batch
        if augment.mosaic or augment.copy_paste or augment.multiscale:
            raise TrainingError("mosaic, copy-paste and multi-scale are detector augmentations")
        if augment.mixup or augment.cutmix:
            try:
                batch_mixing = ClassifierBatchMixing(len(index.classes), augment.mixup, augment.cutmix, options.seed)
            except ValueError as exc:
                raise TrainingError(str(exc)) from None
    else:
        if augment.cutmix:
            raise TrainingError("cutmix is a classifier augmentation; detectors have mosaic and copy-paste")
        if options.crop is not None and (augment.mixes_samples or augment.multiscale):
            raise TrainingError("mosaic, mixup, copy-paste and multi-scale need letterboxed inputs: drop --crop")
        transform = detection_train_transform(parts, augment, options.crop)
        train_set = DetectionData(train_samples, card, transform, native_crop=options.crop is not None,
                                  mixing=augment)
        if augment.mixes_samples and augment.close_mosaic:
            closed_loader = lambda: make_loader(  # noqa: E731
                DetectionData(train_samples, card, transform), options.batch, shuffle=True,
                workers=options.workers, seed=options.seed + 1, drop_last=True)
        val_set = DetectionData(val_samples, card)
        # whole images are (imgsz / crop)^2 times the pixels of a training crop
        val_batch = options.batch if options.crop is None else max(1, options.batch * options.crop ** 2 // imgsz ** 2)
    return _Setup(
        index=index,
        split=split,
        card=card,
        model=model,
        train_loader=make_loader(train_set, options.batch, shuffle=True, workers=options.workers, seed=options.seed,
                                 drop_last=True),
        val_loader=make_loader(val_set, val_batch, shuffle=False, workers=options.workers),
        augment=augment,
        metric_name=_default_metric(options),
        closed_loader=closed_loader,
        batch_mixing=batch_mixing,
        parent=parent,
        teacher=teacher,
        distillation=distillation,
    )


def _step_loss(model: nn.Module, batch, task: str, device: torch.device, label_smoothing: float,
               side: int | None = None, teacher: nn.Module | None = None,
               distillation: Distillation | None = None) -> tuple[torch.Tensor, int]:
    """The batch's training loss and its number of images; ``side``: detection batches resized to it;
    ``teacher``: its softened outputs on the same (mixed) images take ``distillation.weight`` of the loss."""
    if task == "classification":
        images, labels = batch
        images = images.to(device, non_blocking=True)
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=label_smoothing)
        if teacher is not None and distillation is not None:
            with torch.no_grad():
                teacher_logits = teacher(images)
            loss = ((1.0 - distillation.weight) * loss
                    + distillation.weight * distillation_loss(logits, teacher_logits, distillation.temperature))
        return loss, len(labels)
    targets = [{key: value.to(device) for key, value in target.items()} for target in batch.targets]
    images = batch.images.to(device, non_blocking=True)
    if side is not None:
        images, targets = resize_batch(images, targets, side)
    outputs = model(images)
    return model.loss(outputs, targets)["loss"], len(targets)


def _train_epoch(setup: _Setup, options: TrainOptions, state: Checkpoint, epoch: int, device: torch.device,
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 ema: AveragedModel | None) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, last learning rate)."""
    model = setup.model
    model.train()
    total_steps = len(setup.train_loader) * options.epochs
    warmup_steps = max(1, int(options.warmup_epochs * len(setup.train_loader)))
    running, count, lr = 0.0, 0, options.lr
    bar = tqdm(setup.train_loader, desc=f"epoch {epoch}/{options.epochs}", disable=not options.progress,
               dynamic_ncols=True, leave=False)
    side = setup.card.input_size[-1]
    mixing = setup.batch_mixing if epoch <= options.epochs - setup.augment.close_mosaic else None
    for batch in bar:
        lr = learning_rate(state.step, total_steps, warmup_steps, options.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_side = None
        if options.task == "detection" and setup.augment.multiscale:
            # drawn from (seed, step): a resumed run sees the sides an uninterrupted one would
            generator = torch.Generator().manual_seed(options.seed * 1_000_003 + state.step)
            step_side = multiscale_side(side, setup.augment.multiscale, int(getattr(model, "max_stride", 32)),
                                        generator)
        if mixing is not None:
            batch = mixing(*batch, state.step)
        with autocast(device, "training", options.amp):
            loss, images = _step_loss(model, batch, options.task, device, options.label_smoothing, step_side,
                                      setup.teacher, options.distillation)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at epoch {epoch}, step {state.step}; try a lower --lr")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update_parameters(model)
        state.step += 1
        running += float(loss.detach()) * images
        count += images
        bar.set_postfix(loss=f"{running / max(count, 1):.4f}", lr=f"{lr:.2e}")
    bar.close()
    return running / max(count, 1), lr


def train(options: TrainOptions) -> TrainResult:
    """Train, validate every ``val_every`` epochs, keep the best weights, calibrate, write the model folder."""
    from safetensors.torch import load_file, save_file

    started = time.perf_counter()
    commit = git_commit()  # the code that trains, even if the tree moves on during a long run
    if options.task != task_of(options.format):
        raise TrainingError(f"format {options.format!r} holds {task_of(options.format)} data, not {options.task}")
    seed_everything(options.seed)
    device = resolve_device(options.device)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = _set_up(options, out)
    model = setup.model.to(device)
    if setup.teacher is not None:
        setup.teacher.to(device)
    optimizer = make_optimizer(model, options.lr, options.weight_decay)
    ema = make_ema(model) if options.ema else None
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and options.amp != "off"
                                  and not torch.cuda.is_bf16_supported())

    checkpoint_dir = out / CHECKPOINT_DIR
    state = Checkpoint(epoch=0, step=0, best_metric=-math.inf, best_epoch=0, epochs_without_improvement=0,
                       history=[], train_time_s=0.0, wall_time_s=0.0, options=_resume_key(options))
    if options.resume:
        if not (checkpoint_dir / "state.json").is_file():
            raise TrainingError(f"--resume: no checkpoint in {checkpoint_dir}")
        state = load_checkpoint(checkpoint_dir, model, ema, optimizer)
        expected = _resume_key(options)
        if "augment" not in state.options:  # checkpoints from before the key held the augmentation
            expected.pop("augment")
        else:  # an augmentation added since the checkpoint was made was off in it, as by default
            defaults = json.loads(json.dumps(asdict(AugmentConfig())))
            state.options["augment"] = {key: state.options["augment"].get(key, defaults[key])
                                        for key in expected["augment"]}
        if state.options != expected:
            raise TrainingError(f"--resume: the checkpoint was made with {state.options}, not {expected}")
        if state.scaler:
            scaler.load_state_dict(state.scaler)
        log.info("resuming after epoch %d (best %s %.4f at epoch %d)", state.epoch, setup.metric_name,
                 state.best_metric, state.best_epoch)
    wall_before = state.wall_time_s  # the runs before this --resume
    history = [EpochRecord(**{k: v for k, v in row.items() if k in EpochRecord.__dataclass_fields__})
               for row in state.history]
    log.info("training %s (%s, %.2f M params) on %s for %d epochs, %d steps/epoch, input %s", options.model,
             setup.card.input_mode, sum(p.numel() for p in model.parameters()) / 1e6, describe_device(device),
             options.epochs, len(setup.train_loader), setup.card.input_size)

    stopped_early = False
    evaluated = ema.module if ema is not None else model  # what is validated and exported
    best_outputs: ClassifierOutputs | DetectorOutputs | None = None  # the best epoch's, reused for calibration
    asked = options
    epoch = first_epoch = state.epoch
    epoch_train_times: list[float] = []
    while epoch < options.epochs:
        epoch += 1
        if setup.closed_loader is not None and epoch > options.epochs - setup.augment.close_mosaic:
            log.info("epoch %d: the last %d epochs train without mosaic, mixup and copy-paste", epoch,
                     setup.augment.close_mosaic)
            setup.train_loader, setup.closed_loader = setup.closed_loader(), None
        if setup.batch_mixing is not None and epoch == options.epochs - setup.augment.close_mosaic + 1 <= options.epochs:
            log.info("epoch %d: the last %d epochs train without mixup and cutmix", epoch, setup.augment.close_mosaic)
        if isinstance(setup.train_loader.sampler, EpochSampler):
            setup.train_loader.sampler.set_epoch(epoch)
        epoch_started = time.perf_counter()
        train_loss, lr = _train_epoch(setup, options, state, epoch, device, optimizer, scaler, ema)
        epoch_train_times.append(time.perf_counter() - epoch_started)
        state.train_time_s += epoch_train_times[-1]
        if epoch <= first_epoch + 2:
            # planned after the first epoch and again after the second, from the faster of the two:
            # a first epoch slowed by start-up or by another job on the machine would cut the plan short
            options = _fit_schedule_to_time(asked, min(epoch_train_times), epoch, state.train_time_s)
        record = EpochRecord(epoch, train_loss, None, None, lr, 0.0)
        if epoch % options.val_every == 0 or epoch == options.epochs:
            record.val_loss, record.metrics, outputs = _validate(evaluated, setup.val_loader, device, options,
                                                                 setup.index.classes, setup.card.thresholds.nms_iou)
            record.val_metric = record.metrics[setup.metric_name]
            if record.val_metric > state.best_metric:
                best_outputs = outputs
                state.best_metric, state.best_epoch = float(record.val_metric), epoch
                state.epochs_without_improvement = 0
                checkpoint_dir.mkdir(parents=True, exist_ok=True)
                save_file(state_dict_tensors(evaluated), checkpoint_dir / "best.safetensors")
            else:
                state.epochs_without_improvement += options.val_every
        record.epoch_s = time.perf_counter() - epoch_started
        history.append(record)
        state.epoch = epoch
        state.history = [r.row() for r in history]
        state.scaler = scaler.state_dict() if scaler.is_enabled() else None
        state.wall_time_s = wall_before + time.perf_counter() - started
        save_checkpoint(checkpoint_dir, model, ema, optimizer, state)
        _write_log(out, history, setup.metric_name)

        remaining = (options.epochs - epoch) * (sum(r.epoch_s for r in history) / len(history))
        log.info("epoch %d/%d  loss %.4f  %s %s  (best %.4f @%d)  lr %.2e  %.0fs  ETA %s", epoch, options.epochs,
                 record.train_loss, setup.metric_name,
                 "-" if record.val_metric is None else f"{record.val_metric:.4f}", state.best_metric,
                 state.best_epoch, lr, record.epoch_s, _duration(remaining))
        if state.epochs_without_improvement >= options.patience:
            log.info("early stop: no better %s for %d epochs", setup.metric_name, state.epochs_without_improvement)
            stopped_early = True
            break
        if options.max_time_s is not None and state.train_time_s >= options.max_time_s:
            log.info("time budget of %.0f s reached after epoch %d", options.max_time_s, epoch)
            stopped_early = True
            break

    if (checkpoint_dir / "best.safetensors").is_file():
        evaluated.load_state_dict(load_file(checkpoint_dir / "best.safetensors", device=str(device)))
    evaluated.eval()
    card = calibrate_card(evaluated, setup.card, setup.val_loader, device, deeppcb=options.format == "deeppcb",
                          amp=options.amp, seed=options.seed, outputs=best_outputs)
    card = replace(
        card,
        data=DataInfo(
            description=options.description or f"{setup.index.format} data at {setup.index.root}",
            root=str(setup.index.root.resolve()),
            format=setup.index.format,
            content_sha256=setup.index.content_sha256,
            licence=options.licence,
            split_file="split.json",
            counts={name: len(keys) for name, keys in setup.split.subsets.items()},
        ),
        training=TrainingInfo(
            command_line=options.command_line or shlex.join(sys.argv),
            git_commit=commit,
            device=f"{describe_device(device)}; {platform.processor() or platform.machine()}",
            wall_time_s=round(wall_before + time.perf_counter() - started, 1),
            date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            epochs=state.epoch,
            best_epoch=state.best_epoch,
            seed=options.seed,
            options=_public_options(options, card.input_size[-1], card.input_mode, setup.augment) | {
                "epochs_asked": asked.epochs, "epochs_planned": options.epochs} | (
                {"distillation": setup.distillation} if setup.distillation else {}),
            parent=setup.parent,
        ),
    )
    card = save_model(out, evaluated.cpu(), card)
    if not options.keep_checkpoint:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("wrote %s (%s)", out, ", ".join(f"{k} {v:.4f}" for k, v in card.metrics.items()))
    return TrainResult(out, card, history, state.best_epoch, stopped_early, time.perf_counter() - started)


def _fit_schedule_to_time(options: TrainOptions, epoch_train_s: float, epoch: int,
                          done_s: float | None = None) -> TrainOptions:
    """Shorten the planned epochs so that ``max_time_s`` holds a whole warm-up + cosine schedule.

    Cutting a run off at the time limit would leave the learning rate high and the weights
    unsettled; re-planning early lets a slow model finish its schedule. ``done_s`` is the training
    time the first ``epoch`` epochs took (default: ``epoch`` times ``epoch_train_s``).
    """
    if options.max_time_s is None or epoch_train_s <= 0:
        return options
    done_s = epoch * epoch_train_s if done_s is None else done_s
    fits = epoch + int(max(0.0, options.max_time_s - done_s) // epoch_train_s)
    fits = max(epoch, min(options.epochs, fits))
    if fits >= options.epochs:
        return options
    log.info("time budget %.0f s at %.0f s/epoch: the schedule is planned for %d epochs instead of %d",
             options.max_time_s, epoch_train_s, fits, options.epochs)
    return replace(options, epochs=fits)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _public_options(options: TrainOptions, imgsz: int, input_mode: str, augment: AugmentConfig) -> dict[str, Any]:
    options_used = {
        "imgsz": imgsz, "batch": options.batch, "lr": options.lr, "weight_decay": options.weight_decay,
        "warmup_epochs": options.warmup_epochs, "label_smoothing": options.label_smoothing, "ema": options.ema,
        "amp": options.amp, "input_mode": input_mode, "crop": options.crop, "patience": options.patience,
        "val_metric": _default_metric(options), "augment": asdict(augment), "epochs_asked": options.epochs,
    }
    return json.loads(json.dumps(options_used))  # as card.json will hold them (tuples become lists)


def _validate(model: nn.Module, loader: DataLoader, device: torch.device, options: TrainOptions,
              classes: Iterable[str], nms_iou: float):
    """(validation loss or None, metrics, raw outputs) of one pass over the validation set."""
    classes = list(classes)
    if options.task == "classification":
        logits = run_classifier(model, loader, device, options.amp)
        metrics = classification_metrics(logits.labels, logits.logits.argmax(1), classes).summary()
        return negative_log_likelihood(logits.logits, logits.labels), metrics, logits
    detections = run_detector(model, loader, device, nms_iou=nms_iou, amp=options.amp)
    metrics = detection_metrics(detections.predictions, detections.targets, classes).summary()
    if options.format == "deeppcb" or options.val_metric == "deeppcb_map":
        metrics |= deeppcb_metrics(detections.predictions, detections.targets, classes).summary()
    return None, metrics, detections


def _write_log(out: Path, history: list[EpochRecord], metric_name: str) -> None:
    rows = [record.row() for record in history]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(out / "log.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    try:
        plots.training_curves(rows, metric_name, out / "curves.png")
    except Exception as exc:  # a plotting failure must not lose a training run
        log.warning("could not draw the training curves: %s", exc)
