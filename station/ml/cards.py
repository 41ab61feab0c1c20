"""Model cards: a trained network's weights plus everything needed to use it correctly.

A model folder holds ``weights.safetensors``, ``card.json`` and a human-readable
``MODEL_CARD.md``. The card carries the architecture and build arguments, classes, input size
and preprocessing, calibrated temperature, default thresholds, the fixed CAM range, metrics,
data and training provenance, and the weights' sha256. Loading reads only safetensors and
JSON (nothing is unpickled) and refuses weights that do not match the card.

Preprocessing is derived from the card (:func:`prepare_input`), never re-typed by callers, so
that training, evaluation and the station's inference feed the network the same tensor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn

from station.ml.letterbox import LetterboxInfo, letterbox
from station.ml.tta import VIEW_COUNTS

CARD_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
README_FILE = "MODEL_CARD.md"
TASKS = ("classification", "detection")
# input_mode -> (channels of the inspected image, channels of the reference image)
INPUT_MODES: dict[str, tuple[int, int]] = {"rgb": (3, 0), "gray": (1, 0), "gray+ref": (1, 1), "rgb+ref": (3, 3)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelLoadError(Exception):
    """A model folder cannot be used; names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"Cannot load model '{path}': {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class Preprocessing:
    """How an RGB uint8 image becomes the network's float input.

    ``resize``: "resize" stretches to the input size (the CTI paper's 224x224); "letterbox"
    keeps the aspect ratio and pads with ``pad_value`` (detectors: boxes map back exactly).
    ``mean``/``std`` are per input channel, applied after scaling to [0, 1].
    """

    resize: str = "resize"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    grayscale: bool = False
    pad_value: int = 114


@dataclass
class Thresholds:
    score: float = 0.25  # detection: boxes below are not reported
    nms_iou: float = 0.5
    # classification: calibrated top probability below this is "uncertain";
    # detection: boxes scoring in [uncertain_confidence, score) are shown as uncertain
    uncertain_confidence: float = 0.6
    max_det: int = 100


@dataclass
class CamReference:
    """Fixed raw-CAM range: ``low`` maps to 0 and ``high`` to 1, for every image alike.

    ``per_class`` (classifiers): a range per predicted class, ``{class: [low, high]}``. Grad-CAM
    follows the predicted class's logit, and its scale differs from class to class (the demo
    CTI's "plastic" maps peak at a third of its "ceramic" ones), so one range would leave some
    classes' maps always cold. A class without its own range uses ``low``/``high``.
    """

    low: float
    high: float
    per_class: dict[str, list[float]] = field(default_factory=dict)

    def range_for(self, class_name: str | None = None) -> tuple[float, float]:
        low, high = self.per_class.get(class_name, (self.low, self.high)) if class_name else (self.low, self.high)
        return float(low), float(high)


@dataclass
class FamiliarityInfo:
    """The out-of-distribution check on the network's pooled features (``station.inference.familiarity``):
    the layers tapped, one Mahalanobis limit per layer, the joint limit on the mean of the layers'
    distance-to-limit ratios (None: no joint limit, cards fitted before it), the statistics file
    beside the weights and its sha256, and how the limits were fitted (data, quantile, counts, command)."""

    layers: list[str]
    limits: list[float]
    statistics_file: str = "familiarity.safetensors"
    statistics_sha256: str = ""
    fitted: dict[str, Any] = field(default_factory=dict)
    joint_limit: float | None = None

    def __post_init__(self) -> None:
        self.layers = [str(layer) for layer in self.layers]
        self.limits = [float(limit) for limit in self.limits]
        if not self.layers or len(self.layers) != len(self.limits):
            raise ValueError(f"card familiarity needs one limit per layer, got {self.layers} and {self.limits}")
        if self.joint_limit is not None:
            self.joint_limit = float(self.joint_limit)
            if not self.joint_limit > 0:
                raise ValueError(f"card familiarity joint_limit must be positive, got {self.joint_limit}")


@dataclass
class DataInfo:
    description: str = ""
    root: str = ""
    format: str = ""
    content_sha256: str | None = None
    licence: str = ""
    split_file: str | None = None  # relative to the model folder when copied there
    counts: dict[str, int] = field(default_factory=dict)  # images per subset


@dataclass
class TrainingInfo:
    command_line: str = ""
    git_commit: str | None = None
    device: str = ""
    wall_time_s: float = 0.0
    date: str = ""
    epochs: int = 0
    best_epoch: int | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    recalibration: str = ""  # the `station calibrate` command that re-fitted the card after training
    # the model a fine-tuning run started from (`station train --init`): name, weights_sha256, classes,
    # reinitialised (tensors whose shapes differed); empty: trained from random initialisation
    parent: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelCard:
    name: str
    task: str  # "classification" | "detection"
    architecture: str  # config name for station.ml.registry.build_model
    build_kwargs: dict[str, Any]
    classes: list[str]
    input_size: tuple[int, int, int]  # (C, H, W)
    input_mode: str = "rgb"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    temperature: float = 1.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    cam_reference: CamReference | None = None
    familiarity: FamiliarityInfo | None = None  # None: no out-of-distribution check for this model
    test_time_views: int = 1  # detectors: dihedral views fused per image (station.ml.tta); 1 = off
    metrics: dict[str, float] = field(default_factory=dict)
    # what is known to go wrong or was never tested, in the words of whoever measured it
    # (`station models limitations`); shown to the operator beside the metrics
    limitations: list[str] = field(default_factory=list)
    data: DataInfo = field(default_factory=DataInfo)
    training: TrainingInfo = field(default_factory=TrainingInfo)
    weights_sha256: str = ""
    version: int = CARD_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"card task must be one of {TASKS}, got {self.task!r}")
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"card input_mode must be one of {sorted(INPUT_MODES)}, got {self.input_mode!r}")
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        if len(self.input_size) != 3:
            raise ValueError(f"card input_size must be (C, H, W), got {self.input_size}")
        channels = sum(INPUT_MODES[self.input_mode])
        if self.input_size[0] != channels:
            raise ValueError(f"input_size {self.input_size} has {self.input_size[0]} channels but input_mode "
                             f"{self.input_mode!r} gives {channels}")
        if self.test_time_views not in VIEW_COUNTS or (self.test_time_views > 1 and self.task != "detection"):
            raise ValueError(f"card test_time_views must be one of {VIEW_COUNTS} (more than 1 for detectors only), "
                             f"got {self.test_time_views!r}")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self.preprocessing, name))
            if len(values) != channels:
                raise ValueError(f"preprocessing.{name} has {len(values)} values for {channels} input channels")
            setattr(self.preprocessing, name, values)
        if isinstance(self.limitations, str) or not all(isinstance(text, str) for text in self.limitations):
            raise ValueError("card limitations must be a list of strings")
        self.limitations = [text.strip() for text in self.limitations if text.strip()]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def uses_reference(self) -> bool:
        return INPUT_MODES[self.input_mode][1] > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Unknown keys are ignored (newer cards stay readable); missing required ones raise KeyError."""
        data = dict(data)
        version = data.get("version", CARD_VERSION)
        if version > CARD_VERSION:
            raise ValueError(f"card version {version} is newer than this station understands ({CARD_VERSION})")
        nested = {"preprocessing": Preprocessing, "thresholds": Thresholds, "data": DataInfo, "training": TrainingInfo}
        for key, kind in nested.items():
            if data.get(key) is not None:
                data[key] = _build(kind, data[key])
        if data.get("cam_reference") is not None:
            data["cam_reference"] = _build(CamReference, data["cam_reference"])
        if data.get("familiarity") is not None:
            data["familiarity"] = _build(FamiliarityInfo, data["familiarity"])
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and _required(f)]
        if missing:
            raise KeyError(", ".join(missing))
        return _build(cls, data)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]


def _build(kind: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})


# --- preprocessing ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedInput:
    tensor: torch.Tensor  # [C, H, W] float32, normalised
    letterbox: LetterboxInfo | None  # set when the card letterboxes: maps boxes back


def _channels(image: np.ndarray, count: int, what: str) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{what} must be HxWx3 RGB uint8, got shape {image.shape} {image.dtype}")
    if count == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    return image


def stack_input(image: np.ndarray, reference: np.ndarray | None, input_mode: str) -> np.ndarray:
    """HxWxC uint8 network channels for ``input_mode``: the image (gray or RGB), then the reference."""
    image_channels, reference_channels = INPUT_MODES[input_mode]
    parts = [_channels(image, image_channels, "image")]
    if reference_channels:
        if reference is None:
            raise ValueError(f"input mode {input_mode!r} needs a reference (defect-free template) image")
        if reference.shape[:2] != image.shape[:2]:
            raise ValueError(f"reference is {reference.shape[1]}x{reference.shape[0]} but the image is "
                             f"{image.shape[1]}x{image.shape[0]}; they must be aligned and the same size")
        parts.append(_channels(reference, reference_channels, "reference"))
    return np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]


def resize_input(stacked: np.ndarray, card: ModelCard) -> tuple[np.ndarray, LetterboxInfo | None]:
    """Stacked HxWxC uint8 channels -> the card's input size (stretched or letterboxed)."""
    _, height, width = card.input_size
    if card.preprocessing.resize == "letterbox":
        return letterbox(stacked, (height, width), card.preprocessing.pad_value)
    if card.preprocessing.resize != "resize":
        raise ValueError(f"unknown preprocessing.resize {card.preprocessing.resize!r} (resize or letterbox)")
    if stacked.shape[:2] == (height, width):
        return stacked, None
    shrinking = height * width < stacked.shape[0] * stacked.shape[1]
    resized = cv2.resize(stacked, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return resized.reshape(height, width, stacked.shape[2]), None


def normalise(channels: torch.Tensor, card: ModelCard) -> torch.Tensor:
    """[..., C, H, W] uint8 (or float 0..255) -> float32 normalised with the card's mean/std."""
    mean = torch.tensor(card.preprocessing.mean, dtype=torch.float32, device=channels.device).view(-1, 1, 1)
    std = torch.tensor(card.preprocessing.std, dtype=torch.float32, device=channels.device).view(-1, 1, 1)
    return (channels.float() / 255.0 - mean) / std


def prepare_input(image: np.ndarray, card: ModelCard, reference: np.ndarray | None = None) -> PreparedInput:
    """An HxWx3 RGB uint8 image (and its reference, for ``*+ref`` modes) as the network's input."""
    stacked = stack_input(image, reference if card.uses_reference else None, card.input_mode)
    resized, info = resize_input(stacked, card)
    tensor = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)
    return PreparedInput(normalise(tensor, card), info)


# --- saving and loading -------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def state_dict_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state as independent contiguous CPU tensors (safetensors refuses shared storage)."""
    return {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}


def save_model(directory: str | Path, model: nn.Module, card: ModelCard) -> ModelCard:
    """Write ``weights.safetensors``, ``card.json`` and ``MODEL_CARD.md``; returns the card with
    its ``weights_sha256`` filled in."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = save(state_dict_tensors(model), metadata={"format": "pt", "architecture": card.architecture})
    weights = directory / WEIGHTS_FILE
    _write_atomic(weights, payload)
    card = dataclasses.replace(card, weights_sha256=hashlib.sha256(payload).hexdigest())
    save_card(directory, card)
    return card


def _familiarity_lines(info: FamiliarityInfo) -> list[str]:
    limits = ", ".join(f"`{layer}` {limit:.3f}" for layer, limit in zip(info.layers, info.limits))
    lines = [
        "A frame is routed to an expert as NO PART / UNFAMILIAR when the Mahalanobis distance of its pooled "
        f"features (mean and spread per channel) exceeds a limit on any of these layers: {limits}"
        + (f", or when the mean of the layers' distance-to-limit ratios exceeds {info.joint_limit:.3f} (several "
           "layers each a little far)" if info.joint_limit is not None else "")
        + f". Statistics: `{info.statistics_file}` (sha256 `{info.statistics_sha256[:16]}…`).",
    ]
    fitted = info.fitted
    if fitted:
        lines.append("")
        for key in ("statistics_from", "limits_from", "quantile", "counts", "validation_flag_rate", "command", "date"):
            if key in fitted:
                lines.append(f"- {key.replace('_', ' ')}: {fitted[key]}")
    return lines


def save_card(directory: str | Path, card: ModelCard) -> None:
    """Write ``card.json`` and ``MODEL_CARD.md`` (the weights stay as they are)."""
    directory = Path(directory)
    _write_atomic(directory / CARD_FILE, (json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n").encode())
    _write_atomic(directory / README_FILE, render_markdown(card).encode())


def load_card(directory: str | Path) -> ModelCard:
    path = Path(directory) / CARD_FILE
    if not Path(directory).is_dir():
        raise ModelLoadError(directory, "no such model folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
    except FileNotFoundError:
        raise ModelLoadError(path, "the model card is missing") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(path, f"malformed JSON at line {exc.lineno} ({exc.msg})") from None
    except UnicodeDecodeError:
        raise ModelLoadError(path, "not UTF-8 text") from None
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(path, "the model card is not a JSON object")
    try:
        return ModelCard.from_dict(data)
    except KeyError as exc:
        raise ModelLoadError(path, f"the card lacks required fields: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(path, f"invalid card ({exc})") from None


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Build the card's network and load its weights; the model is in eval mode on ``device``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from station.ml.registry import build_model

    directory = Path(directory)
    card = load_card(directory)
    weights = directory / WEIGHTS_FILE
    try:
        payload = weights.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(weights, "the weights file is missing") from None
    except OSError as exc:
        raise ModelLoadError(weights, f"cannot read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != card.weights_sha256:
        raise ModelLoadError(weights, f"sha256 {digest[:12]}… does not match the card's "
                             f"{card.weights_sha256[:12]}… (truncated, corrupted or not this card's weights)")
    try:
        tensors = load(payload)
    except SafetensorError as exc:
        raise ModelLoadError(weights, f"not a valid safetensors file ({exc})") from None
    try:
        model = build_model(card.architecture, **card.build_kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(directory / CARD_FILE, f"cannot build {card.architecture!r} "
                             f"with {card.build_kwargs} ({exc})") from None
    _check_state(weights, model.state_dict(), tensors)
    model.load_state_dict(tensors, strict=True)
    _check_card_fits(directory / CARD_FILE, card, model)
    return model.to(device).eval(), card


def _check_card_fits(path: Path, card: ModelCard, model: nn.Module) -> None:
    """The card describes this network: as many class names as outputs, the network's input
    channels and mode. (Any input size fits: both architectures pad the input to their stride.)"""
    outputs = getattr(model, "num_classes", None)
    if outputs is not None and len(card.classes) != outputs:
        names = ", ".join(card.classes)
        raise ModelLoadError(path, f"card {card.name!r} names {len(card.classes)} classes ({names}) but its network "
                             f"has {outputs} outputs: the card's classes list does not belong to these weights")
    channels = getattr(model, "in_chans", None)
    if channels is not None and card.input_size[0] != channels:
        raise ModelLoadError(path, f"card {card.name!r} gives input_size {list(card.input_size)} "
                             f"({card.input_size[0]} channels) but its network takes {channels} channels")
    network_mode = getattr(model, "input_mode", None)
    if network_mode is not None and network_mode != card.input_mode:
        raise ModelLoadError(path, f"card {card.name!r} has input_mode {card.input_mode!r} but its network was "
                             f"built for {network_mode!r}")


def _check_state(path: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        raise ModelLoadError(path, f"weights are for another network: {', '.join(parts)}")
    for key, tensor in expected.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise ModelLoadError(path, f"tensor {key!r} has shape {tuple(found[key].shape)}, the network wants "
                                 f"{tuple(tensor.shape)}")


# --- MODEL_CARD.md ------------------------------------------------------------------------


_METRIC_LABELS = {
    "accuracy": "accuracy", "macro_precision": "macro precision", "macro_recall": "macro recall",
    "macro_f1": "macro F1", "map50": "mAP@0.5", "map75": "mAP@0.75", "map90": "mAP@0.9",
    "map50_95": "mAP@0.5:0.95", "mar100": "average recall, 100 boxes",
    "ece": "expected calibration error (15 bins, lower is better)",
    "deeppcb_map": "DeepPCB mAP (the benchmark's rule, IoU > 0.33, every detection ranked)",
    "deeppcb_fscore_at_card_threshold": "DeepPCB F-score at the card's threshold (the benchmark's rule)",
    "deeppcb_precision_at_card_threshold": "DeepPCB precision at the card's threshold",
    "deeppcb_recall_at_card_threshold": "DeepPCB recall at the card's threshold",
    "deeppcb_map_at_card_threshold": "DeepPCB mAP of the detections at the card's threshold",
    "deeppcb_fscore_best_threshold_optimistic": "DeepPCB F-score at the threshold best for these images (optimistic)",
    "deeppcb_best_threshold_optimistic": "the threshold of that optimistic F-score",
    "card_threshold": "the card's score threshold",
    "deeppcb_per_class_map": "DeepPCB mAP, lenient per-class rule (not the benchmark's)",
    "deeppcb_per_class_fscore_at_card_threshold": "DeepPCB F-score at the card's threshold, lenient per-class rule",
}


def _metric_label(name: str) -> str:
    """A reader's name for a metric key, with the key itself for the ones without one."""
    label = _METRIC_LABELS.get(name)
    return f"{label} (`{name}`)" if label and label != name else name


def _metric_text(name: str, value: float) -> str:
    """Fractions as percentages; thresholds (also in [0, 1]) as they are.

    ``deeppcb_fscore_at_card_threshold`` and ``deeppcb_fscore_best_threshold_optimistic`` are
    fractions measured at a threshold, not thresholds.
    """
    name = name.removesuffix("_optimistic")
    measured = "_at_" in name or any(word in name for word in ("fscore", "precision", "recall", "map"))
    is_threshold = name.endswith("threshold") and not measured
    if is_threshold or not 0 <= value <= 1:
        return f"{value:.4g}"
    return f"{100 * value:.2f} %"


def _origin(card: ModelCard) -> str:
    parent = card.training.parent
    if not parent:
        return "trained from random initialisation"
    reset = parent.get("reinitialised") or []
    return (f"fine-tuned from `{parent.get('name')}` (weights sha256 `{str(parent.get('weights_sha256', ''))[:12]}…`"
            + (f"; {len(reset)} tensors re-initialised for its new classes" if reset else "") + ")")


def render_markdown(card: ModelCard) -> str:
    """A short human-readable card, written beside card.json."""
    c, h, w = card.input_size
    pre = card.preprocessing
    lines = [
        f"# {card.name}",
        "",
        f"{card.task.capitalize()} model `{card.architecture}` " + _origin(card) + ".",
    ]
    # what an operator needs first: how good it is and where it fails; then how it is used
    lines += ["", "## Validation metrics", ""]
    if card.metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {_metric_label(key)} | {_metric_text(key, float(value))} |"
                  for key, value in card.metrics.items()]
    else:
        lines.append("None recorded: this model has not been validated.")
    if card.limitations:
        lines += ["", "## Known limitations", ""] + [f"- {text}" for text in card.limitations]
    lines += [
        "",
        "## Use",
        f"- Classes ({card.num_classes}): {', '.join(card.classes)}",
        f"- Input: {c}x{h}x{w} ({card.input_mode}), {pre.resize}"
        + (" (grayscale)" if pre.grayscale else "") + f", mean {list(pre.mean)}, std {list(pre.std)}",
    ]
    if card.task == "classification":
        lines.append(f"- Temperature {card.temperature:.3f} (fitted on validation); uncertain below "
                     f"{card.thresholds.uncertain_confidence:.2f} confidence")
    else:
        thresholds = card.thresholds
        lines.append(f"- Score threshold {thresholds.score:.3f}, NMS IoU {thresholds.nms_iou:.2f}, at most "
                     f"{thresholds.max_det} boxes; uncertain from {thresholds.uncertain_confidence:.3f}")
        if card.test_time_views > 1:
            lines.append(f"- Test-time augmentation: {card.test_time_views} dihedral views of each image, boxes "
                         f"merged by weighted boxes fusion ({card.test_time_views}x the single-view time)")
    if card.cam_reference is not None:
        lines.append(f"- Attention maps scaled against the fixed range [{card.cam_reference.low:.4g}, "
                     f"{card.cam_reference.high:.4g}]")
        if card.cam_reference.per_class:
            ranges = ", ".join(f"{name} [{low:.4g}, {high:.4g}]" for name, (low, high) in card.cam_reference.per_class.items())
            lines.append(f"- Per predicted class: {ranges}")
    if card.familiarity is not None:
        lines += ["", "## Familiarity check (no part / unfamiliar)", "", *_familiarity_lines(card.familiarity)]
    data, training = card.data, card.training
    lines += [
        "",
        "## Data",
        f"- {data.description or data.root} ({data.format})",
        f"- Licence: {data.licence or 'not stated'}",
        f"- Content sha256: `{data.content_sha256}`",
        f"- Split file: `{data.split_file}` " + ", ".join(f"{k} {v}" for k, v in data.counts.items()),
        "",
        "## Training",
        f"- Command: `{training.command_line}`",
        f"- Commit {training.git_commit or 'unknown'}, {training.device}, {training.wall_time_s / 60:.1f} min, "
        f"{training.date}",
        f"- {training.epochs} epochs (best {training.best_epoch}), seed {training.seed}",
    ]
    if training.recalibration:
        lines.append(f"- Recalibrated on validation (threshold/temperature, CAM range, metrics): "
                     f"`{training.recalibration}`")
    lines += [
        f"- Weights sha256: `{card.weights_sha256}`",
        "",
    ]
    return "\n".join(lines)
