"""``station calibrate``: re-fit a trained model's card on its own validation split, weights untouched.

Examples::

    station calibrate --model models/wbam-ffem-deeppcb --data ../shared/data/deeppcb --views 8

Re-fits what training fits on validation after the last epoch: the score threshold (detectors,
best validation F-score) or the temperature (classifiers), the fixed CAM range, and the card's
validation metrics, and the familiarity check (``station.training.familiarity_fit``: the
statistics of the network's pooled features on training images and the NO PART / UNFAMILIAR
limits on validation ones; ``--familiarity only`` refits nothing else, ``skip`` leaves it as it
is). ``--views`` turns test-time augmentation on or off for a detector first, so
that threshold and metrics are those of the views the station will run. The command is recorded
in the card (``training.recalibration``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from station.ml.tta import VIEW_COUNTS
from station.training.datasets import FORMATS, DatasetError
from station.training.splits import SplitError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="model folder (card.json + weights.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the dataset the model was trained on")
    parser.add_argument("--format", choices=FORMATS, default=None, help="dataset format (default: the card's)")
    parser.add_argument("--views", type=int, choices=VIEW_COUNTS, default=None,
                        help="detectors: dihedral test-time views fused per image (default: keep the card's)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--familiarity", choices=("refit", "only", "skip"), default="refit",
                        help="the NO PART / UNFAMILIAR check: refit it too (default), refit only it, or leave it")
    parser.add_argument("--familiarity-quantile", type=float, default=None,
                        help="share of validation images each layer's limit lets through (default 0.985)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from station.ml.cards import ModelLoadError
    from station.training.cli_train import console_logging
    from station.training.recalibrate import recalibrate

    from station.training.familiarity_fit import DEFAULT_QUANTILE, fit_familiarity

    console_logging()
    try:
        if args.familiarity != "only":
            card = recalibrate(args.model, args.data, args.format, views=args.views, device=args.device,
                               batch=args.batch, workers=args.workers,
                               command_line=args.command_line, progress=not args.quiet)
            print(f"updated {args.model / 'card.json'}: " + ", ".join(f"{k} {v:.4f}" for k, v in card.metrics.items()))
        if args.familiarity != "skip":
            try:
                card = fit_familiarity(args.model, args.data, args.format,
                                       quantile=args.familiarity_quantile or DEFAULT_QUANTILE,
                                       command_line=args.command_line)
            except SplitError as exc:
                if args.familiarity == "only":
                    raise
                # the recalibration stands; a set too small for the check leaves the card's as it was
                print(f"station calibrate: familiarity check not refitted: {exc}", file=sys.stderr)
                return 0
            info = card.familiarity
            assert info is not None
            print(f"familiarity of {card.name}: limits " + ", ".join(
                f"{layer} {limit:.3f}" for layer, limit in zip(info.layers, info.limits))
                + f", joint {info.joint_limit:.3f}; {info.fitted['validation_flag_rate']:.1%} of validation images flagged")
    except (ModelLoadError, DatasetError, SplitError, ValueError, OSError) as exc:
        print(f"station calibrate: {exc}", file=sys.stderr)
        return 1
    return 0
