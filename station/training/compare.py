"""``station models compare A B --data DIR``: two models on the same images, and whether the
difference is real.

Classifiers: accuracy of each, and McNemar's exact test on the images where exactly one of them is
right (b: only A right, c: only B right; two-sided p = 2·P[Bin(b + c, ½) ≤ min(b, c)]). Detectors:
mAP@0.5 of each and a paired bootstrap over images (the same resampled images for both, fixed
seed): the 95 % interval of mAP(B) − mAP(A) and the share of resamples on the other side of zero.
A difference is called real when p < 0.05 (classifiers) or the interval excludes 0 (detectors).
Both models see the same images: those of ``--data`` (all, or the subset ``--split`` of a split
file), each prepared from its own card.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from station.devices import resolve_device
from station.ml.cards import ModelLoadError, load_model
from station.training.datasets import FORMATS, DatasetError, DatasetIndex, read_dataset
from station.training.evaluate import run_classifier, run_detector
from station.training.loaders import ClassificationData, DetectionData, make_loader
from station.training.metrics import detection_metrics
from station.training.splits import Split, SplitError

SIGNIFICANCE = 0.05


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass
class Comparison:
    task: str
    models: tuple[str, str]
    n_images: int
    metric: str  # "accuracy" | "map50"
    values: tuple[float, float]
    difference: float  # B - A
    real: bool
    test: str
    p_value: float | None = None
    interval: tuple[float, float] | None = None  # detectors: 95 % bootstrap interval of the difference
    counts: dict[str, int] = field(default_factory=dict)  # classifiers: both_right, only_a, only_b, both_wrong
    per_class: dict[str, tuple[float, float]] = field(default_factory=dict)

    def report(self) -> str:
        a, b = self.models
        lines = [f"{self.n_images} images; {self.metric}: {a} {self.values[0]:.4f}, {b} {self.values[1]:.4f} "
                 f"(difference {self.difference:+.4f})"]
        if self.interval is not None:
            lines.append(f"paired bootstrap over images: 95 % interval of the difference "
                         f"[{self.interval[0]:+.4f}, {self.interval[1]:+.4f}], p ≈ {self.p_value:.3f}")
        else:
            lines.append(f"McNemar (exact): only {a} right {self.counts['only_a']}, only {b} right "
                         f"{self.counts['only_b']}, p = {self.p_value:.4f}")
        lines.append(("the difference is real" if self.real else "no real difference")
                     + f" at the {SIGNIFICANCE:.0%} level")
        width = max([len(name) for name in self.per_class] + [5])
        per_class_metric = "recall" if self.task == "classification" else "AP@0.5"
        lines.append(f"  {'class':<{width}}  {a[:12]:>12}  {b[:12]:>12}   ({per_class_metric})")
        lines += [f"  {name:<{width}}  {va:>12.4f}  {vb:>12.4f}" for name, (va, vb) in self.per_class.items()]
        return "\n".join(lines)


def _images(data: Path, fmt: str, classes: list[str], split_file: Path | None, subset: str) -> DatasetIndex:
    index = read_dataset(data, fmt, classes=classes)
    if split_file is None:
        return index
    keys = set(Split.load(split_file).keys(subset)) & {s.key for s in index.samples}
    if not keys:
        raise SplitError(f"none of {split_file}'s {subset!r} images is in {data}")
    return index.subset(keys)


def compare_models(model_a: Path, model_b: Path, data: Path, fmt: str | None = None, *, split_file: Path | None = None,
                   subset: str = "val", resamples: int = 200, seed: int = 0, device: str = "auto",
                   batch: int = 16) -> Comparison:
    torch_device = resolve_device(device)
    (net_a, card_a), (net_b, card_b) = load_model(model_a, torch_device), load_model(model_b, torch_device)
    if card_a.task != card_b.task:
        raise ValueError(f"{card_a.name} is a {card_a.task} model, {card_b.name} a {card_b.task} model")
    if card_a.classes != card_b.classes:
        raise ValueError(f"the models name different classes: {card_a.classes} and {card_b.classes}")
    index = _images(data, fmt or card_a.data.format, card_a.classes, split_file, subset)
    names = (card_a.name, card_b.name) if card_a.name != card_b.name else (str(model_a), str(model_b))
    if card_a.task == "classification":
        outputs = [run_classifier(net, make_loader(ClassificationData(index.samples, card), batch, shuffle=False, workers=0),
                                  torch_device) for net, card in ((net_a, card_a), (net_b, card_b))]
        labels = outputs[0].labels
        right_a, right_b = (o.logits.argmax(1) == labels for o in outputs)
        counts = {"both_right": int((right_a & right_b).sum()), "only_a": int((right_a & ~right_b).sum()),
                  "only_b": int((~right_a & right_b).sum()), "both_wrong": int((~right_a & ~right_b).sum())}
        p_value = mcnemar_exact(counts["only_a"], counts["only_b"])
        values = (float(right_a.float().mean()), float(right_b.float().mean()))
        per_class = {name: (float(right_a[labels == k].float().mean()) if (labels == k).any() else float("nan"),
                            float(right_b[labels == k].float().mean()) if (labels == k).any() else float("nan"))
                     for k, name in enumerate(card_a.classes)}
        return Comparison("classification", names, len(labels), "accuracy", values, values[1] - values[0],
                          p_value < SIGNIFICANCE, "McNemar exact", p_value=p_value, counts=counts, per_class=per_class)

    runs = [run_detector(net, make_loader(DetectionData(index.samples, card), batch, shuffle=False, workers=0), torch_device,
                         nms_iou=card.thresholds.nms_iou, views=card.test_time_views)
            for net, card in ((net_a, card_a), (net_b, card_b))]
    targets = runs[0].targets
    full = [detection_metrics(run.predictions, targets, card_a.classes) for run in runs]
    values = (full[0].map50, full[1].map50)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        picked = rng.integers(0, len(targets), len(targets)).tolist()
        scores = [detection_metrics([run.predictions[i] for i in picked], [targets[i] for i in picked],
                                    card_a.classes).map50 for run in runs]
        differences.append(scores[1] - scores[0])
    differences = np.asarray(differences)
    low, high = (float(v) for v in np.percentile(differences, [2.5, 97.5]))
    difference = values[1] - values[0]
    other_side = float(np.mean(differences <= 0) if difference > 0 else np.mean(differences >= 0))
    per_class = {name: (full[0].per_class_ap50.get(name, float("nan")), full[1].per_class_ap50.get(name, float("nan")))
                 for name in card_a.classes}
    return Comparison("detection", names, len(targets), "map50", values, difference, not low <= 0 <= high,
                      f"paired bootstrap, {resamples} resamples, seed {seed}", p_value=min(1.0, 2 * other_side),
                      interval=(low, high), per_class=per_class)


def configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_a", type=Path, metavar="A", help="model folder")
    parser.add_argument("model_b", type=Path, metavar="B", help="model folder")
    parser.add_argument("--data", type=Path, required=True, help="dataset both are scored on")
    parser.add_argument("--format", choices=FORMATS, help="dataset format (default: A's card's)")
    parser.add_argument("--split-file", type=Path, help="take only a subset of this split file's images")
    parser.add_argument("--subset", default="val", help="with --split-file: which subset (default val)")
    parser.add_argument("--resamples", type=int, default=200, help="detectors: bootstrap resamples (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the comparison as JSON")


def run_compare(args: argparse.Namespace) -> int:
    try:
        result = compare_models(args.model_a, args.model_b, args.data, args.format, split_file=args.split_file,
                                subset=args.subset, resamples=args.resamples, seed=args.seed, device=args.device)
    except (ModelLoadError, DatasetError, SplitError, ValueError) as exc:
        print(f"station models compare: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1) + "\n", encoding="utf-8")
    return 0
