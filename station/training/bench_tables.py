"""``station bench table2|ablation|detectors``: the papers' comparison tables, trained here.

Every model of a table is trained with one recipe on one split (written once, read by all),
scored on the split's test subset (validation when there is none) with ``station evaluate``'s
engine, and timed at its card's input size with batch 1:

* ``table2``: CTI and the torchvision peers (the CTI paper's Table 2 columns: precision,
  recall, F1, accuracy, FPS, params, FLOPs);
* ``ablation``: CTI's switches (Table 3: transformer / CNN branch, C-to-T, T-to-C, weighted sum);
* ``detectors``: WBAM-FFEM against torchvision detectors (COCO mAP, DeepPCB protocol on DeepPCB).

``--budget`` scales the recipe from a CPU smoke run (a few images, one epoch) to a full GPU run.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from station.ml.tta import VIEW_COUNTS, predict_with_views
from station.training.cli_train import add_distillation_strength, parse_angles

log = logging.getLogger(__name__)

TABLE2_MODELS = ("cti-tiny", "resnet18", "resnet50", "convnext-t", "swin-t", "efficientnet-b0", "mobilenetv3-l")
DETECTOR_MODELS = ("wbam-ffem-nano", "fasterrcnn-mobilenet-v3-fpn")


@dataclass(frozen=True)
class Budget:
    epochs: int
    classifier_imgsz: int
    detector_imgsz: int
    batch: int
    patience: int
    per_class: int | None = None  # keep at most this many images per class and subset (smoke runs)


BUDGETS = {
    "smoke": Budget(epochs=1, classifier_imgsz=64, detector_imgsz=128, batch=8, patience=1, per_class=6),
    "cpu": Budget(epochs=30, classifier_imgsz=128, detector_imgsz=320, batch=32, patience=10),
    "full": Budget(epochs=100, classifier_imgsz=224, detector_imgsz=640, batch=32, patience=30),
}


@dataclass
class TableRow:
    model: str
    metrics: dict[str, float]
    fps: float
    params_m: float
    gflops: float  # 2 per multiply-accumulate (torch.utils.flop_counter)
    train_minutes: float
    best_epoch: int
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    config: str = ""  # the registered config trained (``model`` may carry its card name too)


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset folder")
    parser.add_argument("--format", required=True, help="dataset format (e.g. neu-cls, folder, voc, deeppcb)")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="smoke",
                        help="smoke: minutes on a CPU; cpu: a long CPU run; full: the GPU recipe")
    default_models = {"table2": TABLE2_MODELS, "detectors": DETECTOR_MODELS}.get(name)
    parser.add_argument("--models", default=None,
                        help="comma-separated configs" + (f" (default {','.join(default_models)})" if default_models
                                                          else " (default: the CTI config and its Table 3 ablations)"))
    if name == "ablation":
        parser.add_argument("--cti", default="cti-tiny", help="CTI size whose switches are ablated (default cti-tiny)")
    parser.add_argument("--out", type=Path, default=Path("runs") / "bench" / name, help="folder for models and tables")
    parser.add_argument("--split", type=Path, default=None, help="split file to reuse (default: OUT/split.json)")
    parser.add_argument("--val", type=float, default=0.2)
    parser.add_argument("--test", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    parser.add_argument("--imgsz", type=int, default=None, help="override the budget's input side")
    parser.add_argument("--batch", type=int, default=None, help="override the budget's batch size")
    parser.add_argument("--crop", type=int, default=None, help="detectors: native-resolution training crops")
    if name == "detectors":
        parser.add_argument("--test-time-views", type=int, default=1, choices=VIEW_COUNTS,
                            help="every detector's card is fitted, scored and timed over N dihedral views "
                                 "(station.ml.tta; default 1)")
    parser.add_argument("--rotations", type=parse_angles, default=None, metavar="ANGLES",
                        help="rotation choices for every model, e.g. '90,180,270' (default: station train's)")
    if name in ("table2", "ablation"):
        parser.add_argument("--mixup", type=float, default=0.0, metavar="P",
                            help="probability that a batch is MixUp-ed, every model alike (see train)")
        parser.add_argument("--cutmix", type=float, default=0.0, metavar="P",
                            help="probability that a batch is CutMix-ed, every model alike (see train)")
        parser.add_argument("--close-mixing", type=int, default=0, metavar="N",
                            help="the last N epochs train without mixup and cutmix")
        parser.add_argument("--teacher", default=None, metavar="CONFIG",
                            help="one of --models, trained first with the table's recipe; every other model is "
                                 "distilled from it (station train --teacher), the teacher itself is not")
        add_distillation_strength(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue a bench run that was stopped: each model resumes from its checkpoint, "
                             "and a model already trained with this recipe is scored again, not retrained")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=None, help="override the budget's early-stop patience")
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"], help="mixed precision (see train)")
    parser.add_argument("--val-every", type=int, default=1, help="validate every N epochs (default 1)")
    parser.add_argument("--time-per-model", type=float, default=None, metavar="MINUTES",
                        help="each model's training-time budget (see station train --time-budget)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the FPS measurement (default 2)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="models trained at the same time, each in its own process (default 1: one after "
                             "another); with OMP_NUM_THREADS=1, --jobs 2 fills a 2-core machine. A model's FPS "
                             "is then measured while the others may still train")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--bundle", action="append", default=[], metavar="CONFIG=NAME",
                        help="write CONFIG's model to OUT/NAME with card name NAME, ready to copy into models/ "
                             "(repeatable)")
    parser.add_argument("--description", default=None, help="data description for the cards")
    parser.add_argument("--licence", default="", help="data licence for the cards")


# --- measurements ---------------------------------------------------------------------------


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _infer(model: nn.Module, batch: torch.Tensor, task: str, views: int = 1) -> Any:
    if task == "detection":
        return predict_with_views(model, batch, views, score_thresh=0.25, nms_iou=0.5, max_det=100)
    return model(batch)


def count_flops(model: nn.Module, input_size: tuple[int, int, int], task: str, views: int = 1) -> float:
    """FLOPs of one image's forward pass (torch.utils.flop_counter: 2 per multiply-accumulate), over
    ``views`` test-time views for a detector."""
    from station.ml.profile import flop_counter

    probe = torch.zeros(1, *input_size)
    model = model.cpu().eval()
    counter = flop_counter()
    with counter, torch.no_grad():
        _infer(model, probe, task, views)
    return float(counter.get_total_flops())


def measure_fps(model: nn.Module, input_size: tuple[int, int, int], task: str, device: torch.device,
                seconds: float = 3.0, threads: int = 2, views: int = 1) -> float:
    """Images per second at batch 1 (after warm-up), on ``threads`` CPU threads or the GPU; a
    detector runs over ``views`` test-time views of each image."""
    previous_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        model = model.to(device).eval()
        batch = torch.rand(1, *input_size, device=device)
        with torch.inference_mode():
            for _ in range(3):
                _infer(model, batch, task, views)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds or count < 5:
                _infer(model, batch, task, views)
                count += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return count / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous_threads)


# --- the runs -------------------------------------------------------------------------------


def _limit_split(split, index, per_class: int):
    """Keep at most ``per_class`` images per stratum in each subset, drawn with the split's seed."""
    by_key = {sample.key: sample for sample in index.samples}
    limited = {}
    for subset, keys in split.subsets.items():
        rng = np.random.default_rng(split.seed)
        order = [keys[i] for i in rng.permutation(len(keys))]
        taken: dict[int, int] = {}
        chosen = []
        for key in order:
            stratum = by_key[key].stratum if key in by_key else -2
            if taken.get(stratum, 0) < per_class:
                taken[stratum] = taken.get(stratum, 0) + 1
                chosen.append(key)
        limited[subset] = sorted(chosen)
    return replace(split, subsets=limited)


def prepare_split(args: argparse.Namespace, budget: Budget) -> Path:
    """The one split every model of the table trains and is scored on, written to OUT/split.json."""
    from station.training.datasets import read_dataset
    from station.training.splits import Split, make_split

    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "split.json"
    index = read_dataset(args.data, args.format)
    split = Split.load(args.split) if args.split else make_split(index, seed=args.seed, val=args.val, test=args.test)
    if budget.per_class is not None:
        split = _limit_split(split, index, budget.per_class)
    split.save(target)
    log.info("bench split %s:\n%s", target, split.describe(index))
    return target


def train_and_score(model_name: str, args: argparse.Namespace, task: str, budget: Budget, split_file: Path) -> TableRow:
    """Train ``model_name`` with the table's recipe, score it on the split, time it."""
    from station.devices import resolve_device
    from station.ml.cards import load_model
    from station.training.evaluate import evaluate
    from station.training.distillation import Distillation
    from station.training.train import CHECKPOINT_DIR, TrainOptions, train
    from station.training.transforms import default_augment

    names = bundle_names(args)
    card_name = names.get(model_name, model_name)
    out = args.out / card_name
    teacher = getattr(args, "teacher", None)
    distillation = None
    if teacher and model_name != teacher:
        distillation = Distillation(args.out / names.get(teacher, teacher), args.distill_weight,
                                    args.distill_temperature)
    imgsz = args.imgsz or (budget.classifier_imgsz if task == "classification" else budget.detector_imgsz)
    augment = default_augment(task, args.rotations)
    if task == "classification":
        augment = replace(augment, mixup=args.mixup, cutmix=args.cutmix, close_mosaic=args.close_mixing)
    options = TrainOptions(
        task=task, data=args.data, format=args.format, model=model_name, out=out,
        epochs=args.epochs or budget.epochs, imgsz=imgsz, batch=args.batch or budget.batch, device=args.device,
        seed=args.seed, split_file=split_file, patience=args.patience or budget.patience, workers=args.workers,
        amp=args.amp, val_every=args.val_every,
        crop=args.crop if task == "detection" else None, lr=args.lr,
        augment=augment, resume=args.resume and (out / CHECKPOINT_DIR / "state.json").is_file(),
        test_time_views=getattr(args, "test_time_views", 1) if task == "detection" else 1,
        max_time_s=args.time_per_model * 60 if args.time_per_model else None,
        command_line="station " + shlex.join(sys.argv[1:]), progress=not args.quiet,
        name=card_name, description=args.description or f"bench {args.bench} ({args.budget})",
        licence=args.licence, distillation=distillation,
    )
    finished = _finished_run(options) if args.resume and not options.resume else None
    if finished is not None:
        log.info("%s: trained already with this recipe (%s); scoring it again", model_name, out)
        wall_time_s, best_epoch = finished.training.wall_time_s, finished.training.best_epoch
    else:
        result = train(options)
        wall_time_s, best_epoch = result.wall_time_s, result.best_epoch
    subset = "test" if json.loads(split_file.read_text(encoding="utf-8-sig"))["subsets"].get("test") else "val"
    protocol = "deeppcb" if args.format == "deeppcb" else "coco"
    scored = evaluate(out, args.data, args.format, subset=subset, split_file=split_file, protocol=protocol,
                      device=args.device, progress=not args.quiet)
    model, card = load_model(out)
    device = resolve_device(args.device)
    return TableRow(
        model=model_name if card_name == model_name else f"{model_name} ({card_name})",
        config=model_name,
        metrics=scored.metrics() | {"subset_images": scored.n_images},
        fps=measure_fps(model, card.input_size, task, device, threads=args.threads, views=card.test_time_views),
        params_m=count_parameters(model) / 1e6,
        gflops=count_flops(model, card.input_size, task, card.test_time_views) / 1e9,
        train_minutes=wall_time_s / 60,
        best_epoch=best_epoch,
        notes=f"distilled from {teacher}" if distillation is not None else "",
        extra={"subset": subset, "input_size": list(card.input_size), "device": card.training.device,
               "epochs": card.training.epochs, "test_time_views": card.test_time_views},
    )


def _finished_run(options) -> Any:
    """The card in ``options.out`` when it was trained with this recipe; None when there is none.

    A card made with another model, seed, schedule or augmentation is not taken for this run's.
    """
    from station.ml.cards import ModelLoadError, load_card
    from station.training.train import TrainingError

    if not (options.out / "card.json").is_file():
        return None
    try:
        card = load_card(options.out)
    except ModelLoadError as exc:
        raise TrainingError(f"--resume: {options.out} holds an unreadable card ({exc}); move it away") from None
    used = card.training.options
    asked = {"architecture": options.model, "seed": options.seed, "epochs_asked": options.epochs,
             "imgsz": options.imgsz, "batch": options.batch,
             "augment": json.loads(json.dumps(asdict(options.augment))),
             "distillation": None if options.distillation is None else {
                 "teacher": options.distillation.teacher_dir.name, "weight": options.distillation.weight,
                 "temperature": options.distillation.temperature}}
    taught = used.get("distillation")
    found = {"architecture": card.architecture, "seed": card.training.seed,
             **{key: used.get(key) for key in ("epochs_asked", "imgsz", "batch", "augment")},
             "distillation": None if taught is None else {key: taught.get(key)
                                                          for key in ("teacher", "weight", "temperature")}}
    if found != asked:
        differs = ", ".join(f"{key} {found[key]!r} (asked {asked[key]!r})" for key in asked if found[key] != asked[key])
        raise TrainingError(f"--resume: {options.out} holds a model trained otherwise: {differs}; "
                            "move it away or give another --out")
    return card


def bundle_names(args: argparse.Namespace) -> dict[str, str]:
    """``--bundle CONFIG=NAME`` pairs as a mapping; a malformed pair raises ValueError."""
    names: dict[str, str] = {}
    for pair in args.bundle:
        config, sep, name = pair.partition("=")
        if not sep or not config.strip() or not name.strip():
            raise ValueError(f"--bundle {pair!r}: expected CONFIG=NAME")
        names[config.strip()] = name.strip()
    return names


def _epochs(row: TableRow) -> str:
    """Epochs trained, with the best one: '30 (best 27)'."""
    epochs = row.extra.get("epochs")
    return f"{row.best_epoch}" if epochs is None else f"{epochs} (best {row.best_epoch})"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def format_table(rows: list[TableRow], kind: str, title: str) -> str:
    if kind == "detection":
        deeppcb = any("deeppcb_map" in row.metrics for row in rows)
        header = ["Method", "mAP@.5", "mAP@.75", "mAP@.9", "mAP@.5:.95"] + (
            ["DeepPCB mAP", "DeepPCB F @card thr."] if deeppcb else []) + [
            "FPS", "Params (M)", "GFLOPs", "train min", "epochs"]
        body = []
        for row in rows:
            m = row.metrics
            views = row.extra.get("test_time_views", 1)
            method = row.model if views == 1 else f"{row.model}, {views} test-time views"
            cells = [method, *(_percent(m.get(k)) for k in ("map50", "map75", "map90", "map50_95"))]
            if deeppcb:
                # F at the card's threshold (chosen on validation), not at the scored set's own best
                cells += [_percent(m.get("deeppcb_map")),
                          _percent(m.get("deeppcb_fscore_at_card_threshold"))]
            body.append(cells + [f"{row.fps:.1f}", f"{row.params_m:.2f}", f"{row.gflops:.2f}",
                                 f"{row.train_minutes:.1f}", _epochs(row)])
    else:
        header = ["Method", "Precision (%)", "Recall (%)", "F1-Score (%)", "Accuracy (%)", "FPS", "Params (M)",
                  "GFLOPs", "train min", "epochs"] + (["switches"] if kind == "ablation" else [])
        body = []
        for row in rows:
            m = row.metrics
            cells = [row.model, _percent(m.get("macro_precision")), _percent(m.get("macro_recall")),
                     _percent(m.get("macro_f1")), _percent(m.get("accuracy")), f"{row.fps:.1f}",
                     f"{row.params_m:.2f}", f"{row.gflops:.2f}", f"{row.train_minutes:.1f}", _epochs(row)]
            body.append(cells + ([row.notes] if kind == "ablation" else []))
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _switches(config_name: str) -> str:
    from station.ml.cti import CONFIGS

    config = CONFIGS[config_name]
    return (f"branches={config.branches} c_to_t={config.c_to_t} t_to_c={config.t_to_c} "
            f"fusion={config.fusion}")


def run(args: argparse.Namespace) -> int:
    from station.training.cli_train import console_logging
    from station.training.datasets import DatasetError, task_of
    from station.training.splits import SplitError
    from station.training.train import TrainingError

    console_logging()
    budget = BUDGETS[args.budget]
    try:
        task = task_of(args.format)
    except DatasetError as exc:
        print(f"station bench: {exc}", file=sys.stderr)
        return 2
    expected = "detection" if args.bench == "detectors" else "classification"
    if task != expected:
        print(f"station bench {args.bench}: --format {args.format} holds {task} data; this table needs {expected}",
              file=sys.stderr)
        return 2
    if args.models:
        names = [name.strip() for name in args.models.split(",") if name.strip()]
    elif args.bench == "table2":
        names = list(TABLE2_MODELS)
    elif args.bench == "detectors":
        names = list(DETECTOR_MODELS)
    else:
        from station.ml.cti import TABLE3_ABLATIONS

        names = [f"{args.cti}-{ablation}" for ablation in TABLE3_ABLATIONS] + [args.cti]
    try:
        unknown = set(bundle_names(args)) - set(names)
    except ValueError as exc:
        print(f"station bench {args.bench}: {exc}", file=sys.stderr)
        return 2
    if unknown:
        print(f"station bench {args.bench}: --bundle names {', '.join(sorted(unknown))}, not in --models",
              file=sys.stderr)
        return 2
    teacher = getattr(args, "teacher", None)
    if teacher and teacher not in names:
        print(f"station bench {args.bench}: --teacher {teacher} is not in --models", file=sys.stderr)
        return 2
    if teacher and task != "classification":
        print(f"station bench {args.bench}: --teacher is for classifiers", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows: list[TableRow] = []
    try:
        split_file = prepare_split(args, budget)
        for row in _train_all(names, args, task, budget, split_file):
            if args.bench == "ablation":
                row.notes = _switches(row.config)
            rows.append(row)
            _write(args, rows, task, started)
    except (DatasetError, SplitError, TrainingError, KeyError) as exc:
        print(f"station bench {args.bench}: {exc}", file=sys.stderr)
        return 1
    print(_write(args, rows, task, started))
    return 0


def _train_all(names: list[str], args: argparse.Namespace, task: str, budget: Budget, split_file: Path):
    """Rows in ``names`` order, the ``--teacher`` first; ``--jobs N`` trains N models at once, each in a
    spawned process (the teacher alone, before the models it teaches)."""
    teacher = getattr(args, "teacher", None)
    if teacher:
        log.info("=== %s (the teacher) ===", teacher)
        yield train_and_score(teacher, args, task, budget, split_file)
        names = [name for name in names if name != teacher]
        if not names:
            return
    if args.jobs <= 1 or len(names) == 1:
        for name in names:
            log.info("=== %s ===", name)
            yield train_and_score(name, args, task, budget, split_file)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from station.training.cli_train import console_logging
    from station.training.train import TrainingError

    log.info("=== %s: %d at a time ===", ", ".join(names), args.jobs)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=console_logging) as pool:
        futures = [pool.submit(train_and_score, name, args, task, budget, split_file) for name in names]
        for name, future in zip(names, futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                raise TrainingError(f"the process training {name} died (out of memory?); "
                                    "run again with fewer --jobs") from None


def _write(args: argparse.Namespace, rows: list[TableRow], task: str, started: float) -> str:
    kind = "ablation" if args.bench == "ablation" else task
    subset = rows[0].extra.get("subset", "val") if rows else "val"
    title = (f"station bench {args.bench} --budget {args.budget}: {args.data} ({args.format}), "
             f"{subset} subset, seed {args.seed}; FPS at batch 1 ({args.threads} CPU threads or the GPU)")
    table = format_table(rows, kind, title)
    (args.out / "table.md").write_text(table + "\n", encoding="utf-8")
    results = {
        "bench": args.bench, "budget": args.budget, "data": str(args.data), "format": args.format,
        "seed": args.seed, "command": "station " + shlex.join(sys.argv[1:]),
        "minutes": (time.perf_counter() - started) / 60, "rows": [asdict(row) for row in rows],
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return table
