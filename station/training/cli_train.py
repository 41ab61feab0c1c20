"""``station train classifier|detector``: train a model on a dataset and write ``models/<name>/``.

Examples::

    station train classifier --data ../shared/data/neu-det --format neu-cls --model cti-tiny \\
        --epochs 60 --imgsz 224 --out models/cti-neu
    station train detector --data ../shared/data/deeppcb --format deeppcb --model wbam-ffem-nano \\
        --imgsz 640 --crop 320 --epochs 80 --out models/wbam-ffem-deeppcb
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from station.ml.tta import VIEW_COUNTS
from station.training.datasets import CLASSIFICATION_FORMATS, DETECTION_FORMATS, FORMATS, DatasetError
from station.training.splits import SPLIT_SOURCES, SplitError

TASKS = {"classifier": "classification", "detector": "detection"}
DEFAULT_MODELS = {"classifier": "cti-tiny", "detector": "wbam-ffem-nano"}


def console_logging() -> None:
    """INFO lines of the training package on stdout (warnings already reach stderr)."""
    logger = logging.getLogger("station.training")
    if any(getattr(h, "_station_console", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(lambda record: record.levelno < logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._station_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def parse_angles(text: str) -> tuple[float, ...]:
    """"0,15,30" or "±15,±30" -> angles; a ± (or +-) gives both signs; 0 (no turn) is always in."""
    angles = {0.0}
    for item in text.replace("+-", "±").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item.lstrip("±"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an angle list: {text!r}") from None
        angles.add(value)
        if item.startswith("±"):
            angles.add(-value)
    return tuple(sorted(angles))


def parse_pair(text: str) -> tuple[float, float]:
    """"1,2" -> (1.0, 2.0)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 < LOW <= HIGH, got {text!r}")
    return low, high


def parse_override(text: str) -> tuple[str, object]:
    """KEY=VALUE, VALUE read as JSON when it parses (numbers, true/false, lists), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_distillation_strength(group) -> None:
    """--distill-weight and --distill-temperature, for station train and the table benches alike."""
    group.add_argument("--distill-weight", type=float, default=0.5, metavar="ALPHA",
                       help="with --teacher: share of the loss that follows the teacher (default 0.5)")
    group.add_argument("--distill-temperature", type=float, default=4.0, metavar="T",
                       help="with --teacher: softening temperature of both networks' outputs (default 4)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=sorted(TASKS), help="what to train")
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, required=True, help="dataset folder (or COCO JSON file)")
    data.add_argument("--format", required=True, choices=FORMATS,
                      help=f"classifier: {', '.join(CLASSIFICATION_FORMATS)}; detector: {', '.join(DETECTION_FORMATS)}")
    data.add_argument("--split", type=Path, default=None, metavar="FILE",
                      help="split file: read when it exists, else written there (default: OUT/split.json)")
    data.add_argument("--split-from", choices=SPLIT_SOURCES, default="auto",
                      help="a new split: the dataset's own lists (YOLO data.yaml train/val/test, VOC ImageSets/Main, "
                           "COCO's per-split annotation files, DeepPCB trainval.txt/test.txt), a random stratified "
                           "one, or auto (the dataset's when it has one; default)")
    data.add_argument("--val", type=float, default=0.2, help="validation fraction of a new split (default 0.2)")
    data.add_argument("--test", type=float, default=0.0, help="test fraction of a new split (default 0)")
    data.add_argument("--strict", action="store_true", help="stop on any data problem instead of leaving it out")
    data.add_argument("--description", default="", help="data description for the card")
    data.add_argument("--licence", default="", help="data licence for the card (e.g. 'research use only')")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, help="registered config (default: cti-tiny / wbam-ffem-nano; "
                       "with --init: the init model's)")
    model.add_argument("--init", type=Path, default=None, metavar="MODEL_DIR",
                       help="start from this model's weights (fine-tuning); a head for other classes is "
                            "re-initialised, and the card records the parent's name and hash")
    model.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                       metavar="KEY=VALUE", help="config override passed to the builder (repeatable)")
    model.add_argument("--input-mode", default="auto", choices=["auto", "rgb", "gray", "gray+ref", "rgb+ref"],
                       help="network input channels (auto: gray+ref for tested+template data, else rgb)")
    model.add_argument("--imgsz", type=int, default=None, help="square input side (default: the model's)")
    model.add_argument("--out", type=Path, required=True, help="output folder, e.g. models/NAME")
    model.add_argument("--name", default=None, help="card name (default: the output folder's name)")

    distil = parser.add_argument_group("distillation (classifier)")
    distil.add_argument("--teacher", type=Path, default=None, metavar="MODEL_DIR",
                        help="a trained classifier of the same classes and input: its temperature-softened "
                             "outputs on each training batch join the loss (Hinton et al. 2015)")
    add_distillation_strength(distil)

    run = parser.add_argument_group("training")
    run.add_argument("--epochs", type=int, default=50)
    run.add_argument("--batch", type=int, default=16)
    run.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    run.add_argument("--weight-decay", type=float, default=0.05)
    run.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs (default 1)")
    run.add_argument("--label-smoothing", type=float, default=0.1, help="classifier only (default 0.1)")
    run.add_argument("--no-ema", action="store_true", help="validate and export the raw weights, not their EMA")
    run.add_argument("--patience", type=int, default=20, help="early stop after this many epochs without a better "
                     "validation metric (default 20)")
    run.add_argument("--val-metric", default=None, help="accuracy|macro_f1 (classifier), map50|map50_95|deeppcb_map "
                     "(detector); default accuracy / map50 (deeppcb_map on DeepPCB)")
    run.add_argument("--val-every", type=int, default=1, help="validate every N epochs (default 1)")
    run.add_argument("--test-time-views", type=int, default=1, choices=VIEW_COUNTS,
                     help="detector: dihedral views fused per image at inference; the card's threshold and "
                          "metrics are fitted with them (default 1: off; epochs validate on one view)")
    run.add_argument("--crop", type=int, default=None, metavar="N",
                     help="detector: train on random NxN native-resolution crops, validate on whole images")
    run.add_argument("--rotations", type=parse_angles, default=None, metavar="ANGLES",
                     help="rotation choices, e.g. '±15,±30' (classifier default, the CTI paper's) or '90,180,270' "
                          "(detector default)")
    aug = parser.add_argument_group("augmentation (mosaic, copy-paste and multi-scale: detector, no --crop; "
                                    "cutmix: classifier; mixup: both)")
    aug.add_argument("--brightness", type=float, default=None, help="brightness jitter factor (default 0.2)")
    aug.add_argument("--contrast", type=float, default=None, help="contrast jitter factor (default 0.2)")
    aug.add_argument("--saturation", type=float, default=None,
                     help="saturation jitter factor (default 0.2; 0 for grey parts such as steel)")
    aug.add_argument("--mosaic", type=float, default=0.0, metavar="P", help="probability of a 4-image mosaic")
    aug.add_argument("--mosaic-zoom", type=parse_pair, default=(1.0, 2.0), metavar="LOW,HIGH",
                     help="mosaic window side in input sides, resized to the input (default 1,2)")
    aug.add_argument("--mixup", type=float, default=0.0, metavar="P",
                     help="probability of mixup with a second sample (classifier: of a batch, labels mixed too)")
    aug.add_argument("--cutmix", type=float, default=0.0, metavar="P",
                     help="classifier: probability that a batch is CutMix-ed (mixup + cutmix at most 1)")
    aug.add_argument("--copy-paste", type=float, default=0.0, metavar="P",
                     help="probability of pasting up to 3 boxes cut from another training image")
    aug.add_argument("--close-mosaic", type=int, default=0, metavar="N",
                     help="the last N epochs train without mosaic, mixup, cutmix and copy-paste")
    aug.add_argument("--multiscale", type=float, default=0.0, metavar="F",
                     help="each batch at a random side within imgsz*(1+-F), a multiple of the stride")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    run.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                     help="mixed precision: auto = CUDA only; bf16 also on the CPU")
    run.add_argument("--workers", type=int, default=2, help="data-loading processes (default 2)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    run.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint after training")
    run.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                     help="training-time budget: after the first two epochs the schedule is "
                          "planned to end inside it (and the run stops at the latest after the epoch "
                          "that passes it)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace, command_line: str | None = None):
    from station.ml.cards import load_card
    from station.training.train import TrainOptions
    from dataclasses import replace

    from station.training.distillation import Distillation
    from station.training.transforms import default_augment

    task = TASKS[args.task]
    teacher = getattr(args, "teacher", None)
    if teacher is not None and task != "classification":
        raise ValueError("--teacher is a classifier option")
    augment = default_augment(task, args.rotations)
    jitter = {key: getattr(args, key, None) for key in ("brightness", "contrast", "saturation")}
    mixing = {key: getattr(args, key, default) for key, default in (
        ("mosaic", 0.0), ("mosaic_zoom", (1.0, 2.0)), ("mixup", 0.0), ("copy_paste", 0.0), ("close_mosaic", 0),
        ("multiscale", 0.0), ("cutmix", 0.0))}
    if task == "classification" and any(mixing[key] for key in ("mosaic", "copy_paste", "multiscale")):
        raise ValueError("--mosaic, --copy-paste and --multiscale are detector options")
    if task == "detection" and mixing["cutmix"]:
        raise ValueError("--cutmix is a classifier option (detectors have --mosaic and --copy-paste)")
    augment = replace(augment, **{k: v for k, v in jitter.items() if v is not None}, **mixing)
    return TrainOptions(
        task=task,
        data=args.data,
        format=args.format,
        model=args.model or (load_card(args.init).architecture if args.init else DEFAULT_MODELS[args.task]),
        out=args.out,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        seed=args.seed,
        split_file=args.split,
        split_from=args.split_from,
        val_fraction=args.val,
        test_fraction=args.test,
        resume=args.resume,
        init=args.init,
        patience=args.patience,
        workers=args.workers,
        crop=args.crop,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup,
        label_smoothing=args.label_smoothing,
        ema=not args.no_ema,
        amp=args.amp,
        input_mode=args.input_mode,
        augment=augment,
        build_kwargs=dict(args.overrides),
        val_metric=args.val_metric,
        val_every=args.val_every,
        test_time_views=args.test_time_views,
        name=args.name,
        description=args.description,
        licence=args.licence,
        strict=args.strict,
        keep_checkpoint=args.keep_checkpoint,
        max_time_s=args.time_budget * 60 if args.time_budget else None,
        command_line=command_line or getattr(args, "command_line", "") or "station " + shlex.join(sys.argv[1:]),
        progress=not args.quiet,
        distillation=None if teacher is None else Distillation(teacher, args.distill_weight,
                                                                args.distill_temperature),
    )


def run(args: argparse.Namespace) -> int:
    from station.ml.cards import ModelLoadError
    from station.training.train import TrainingError, train

    console_logging()
    if args.task == "classifier" and args.format not in CLASSIFICATION_FORMATS:
        print(f"station train classifier: --format must be one of {CLASSIFICATION_FORMATS}", file=sys.stderr)
        return 2
    if args.task == "detector" and args.format not in DETECTION_FORMATS:
        print(f"station train detector: --format must be one of {DETECTION_FORMATS}", file=sys.stderr)
        return 2
    try:
        result = train(options_from_args(args))
    except (DatasetError, SplitError, TrainingError, ModelLoadError, KeyError, ValueError) as exc:
        print(f"station train: {exc}", file=sys.stderr)
        return 1
    print(f"model written to {result.out_dir} (best epoch {result.best_epoch}, "
          f"{result.wall_time_s / 60:.1f} min)")
    for key, value in result.card.metrics.items():
        print(f"  val {key:<36} {value:.4f}")
    return 0
