"""``station evaluate``: score a trained model on a dataset.

Examples::

    station evaluate --model models/cti-neu --data ../shared/data/neu-det --format neu-cls --json out.json
    station evaluate --model models/wbam-ffem-deeppcb --data ../shared/data/deeppcb --protocol deeppcb

Which images: ``--split auto`` (default) takes the test subset of the model's split file (its
validation subset when there is no test subset) when ``--data`` is the dataset it was trained
on, and every image when ``--data`` is a folder the model never saw; ``val``, ``test``, ``all``
and ``unseen`` (images in no subset of the split) choose explicitly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from station.ml.tta import VIEW_COUNTS
from station.training.datasets import FORMATS, DatasetError
from station.training.evaluate import PROTOCOLS, SUBSET_CHOICES
from station.training.splits import SplitError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="model folder (card.json + weights.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (or COCO JSON file)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="dataset format (default: the card's)")
    parser.add_argument("--split", default="auto", choices=SUBSET_CHOICES, help="which images (default auto)")
    parser.add_argument("--split-file", type=Path, default=None, help="split file (default: the card's)")
    parser.add_argument("--protocol", default="coco", choices=PROTOCOLS,
                        help="detection: coco; deeppcb adds the DeepPCB benchmark's own figures (its script's rule: "
                             "IoU > 0.33 pairing whatever the class, then the class check; AP over every detection, "
                             "P/R/F at the card's threshold) and writes the script's input files; deeppcb-per-class: "
                             "the lenient per-class matching, for comparison only")
    parser.add_argument("--json", type=Path, default=None, help="write {task, n_images, metrics} here")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for metrics.json, confusion matrix / PR curves (default: runs/evaluate/NAME)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--views", type=int, choices=VIEW_COUNTS, default=None,
                        help="detectors: dihedral test-time views fused per image (default: the card's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from station.ml.cards import ModelLoadError, load_card
    from station.training.cli_train import console_logging
    from station.training.evaluate import evaluate, format_report

    console_logging()
    try:
        out = args.out or Path("runs") / "evaluate" / load_card(args.model).name
        result = evaluate(
            args.model,
            args.data,
            args.format,
            subset=args.split,
            split_file=args.split_file,
            protocol=args.protocol,
            device=args.device,
            batch=args.batch,
            workers=args.workers,
            out_dir=out,
            progress=not args.quiet,
            views=args.views,
        )
    except (ModelLoadError, DatasetError, SplitError, ValueError) as exc:
        print(f"station evaluate: {exc}", file=sys.stderr)
        return 1
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    print(format_report(result))
    return 0
