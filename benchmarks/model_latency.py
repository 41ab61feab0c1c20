"""Batch-1 latency of trained model folders at their cards' input sizes, timed in one run.

    python benchmarks/model_latency.py models/wbam-ffem-deeppcb runs/bench/deeppcb/fasterrcnn-mobilenet-v3-fpn
    python benchmarks/model_latency.py models/cti-neu runs/bench/neu-cls/resnet18 --threads 2 --json out.json

Detectors are timed through ``predict()`` (letterboxed input to boxes, NMS included) over the
card's test-time views (``--single-view``: one view), classifiers through ``forward()``. The folders are timed in interleaved rounds (one call of each per round),
so a change in the machine's load affects all of them alike: compare figures within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from station.ml.cards import load_model
from station.ml.tta import predict_with_views


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="model folders (card.json + weights)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--rounds", type=int, default=30, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--single-view", action="store_true", help="detectors: one view even where the card "
                        "asks for test-time views")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    calls = []
    for folder in args.folders:
        model, card = load_model(folder)
        model.eval()
        image = torch.rand(1, *card.input_size)
        views = 1 if args.single_view or card.task != "detection" else card.test_time_views
        if card.task == "detection":
            def call(m=model, x=image, v=views):
                return predict_with_views(m, x, v, score_thresh=0.25, nms_iou=0.5, max_det=100)
        else:
            def call(m=model, x=image):
                return m(x)
        calls.append((str(folder), card, call, views))

    times: dict[str, list[float]] = {name: [] for name, *_ in calls}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for _, _, call, _ in calls:
                call()
        for _ in range(args.rounds):
            for name, _, call, _ in calls:
                started = time.perf_counter()
                call()
                times[name].append(1000 * (time.perf_counter() - started))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"batch 1, {args.threads} CPU threads, {args.rounds} interleaved rounds, torch {torch.__version__}, "
          f"{platform.machine()}, load average {load:.2f}\n")
    print("| model | architecture | input | views | median ms | p90 ms |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name, card, _, views in calls:
        values = sorted(times[name])
        row = {"folder": name, "architecture": card.architecture, "input_size": list(card.input_size), "views": views,
               "median_ms": statistics.median(values), "p90_ms": values[int(0.9 * (len(values) - 1))]}
        rows.append(row)
        c, h, w = card.input_size
        print(f"| {name} | {card.architecture} | {c}×{h}×{w} | {views} | {row['median_ms']:.1f} | "
              f"{row['p90_ms']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "load": load, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
