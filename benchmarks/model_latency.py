"""Latency and throughput of trained model folders at their cards' input sizes, timed in one run.

    python benchmarks/model_latency.py models/wbam-ffem-deeppcb runs/bench/deeppcb/fasterrcnn-mobilenet-v3-fpn
    python benchmarks/model_latency.py models/cti-neu runs/bench/neu-cls/resnet18 --threads 2 --json out.json
    python benchmarks/model_latency.py models/* --device cuda --batch 64 --amp auto   # GPU throughput

Detectors are timed through ``predict()`` (letterboxed input to boxes, NMS included) over the
card's test-time views (``--single-view``: one view), classifiers through ``forward()``. The
folders are timed in interleaved rounds (one call of each per round), so a change in the
machine's load affects all of them alike: compare figures within one run. On CUDA the models
run channels-last, as the station's engine runs them, and each call is timed to the GPU's end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from station.devices import describe_device, resolve_device
from station.inference.networks import classifier_logits, detections
from station.ml.cards import load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="model folders (card.json + weights)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--rounds", type=int, default=30, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--single-view", action="store_true", help="detectors: one view even where the card "
                        "asks for test-time views")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--batch", type=int, default=1, help="images per call (default 1); >1 measures throughput")
    parser.add_argument("--amp", choices=["off", "auto", "bf16"], default="off",
                        help="mixed precision (station.devices.autocast): auto = on CUDA the detector in fp16, the "
                        "classifier in bf16 (fp16 without bf16); bf16 also on the CPU")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if min(args.batch, args.rounds) < 1 or args.warmup < 0:
        parser.error("--batch and --rounds must be at least 1, --warmup at least 0")
    try:
        device = resolve_device(args.device)
    except (RuntimeError, ValueError) as exc:
        parser.error(str(exc))

    torch.set_num_threads(args.threads)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    calls = []
    for folder in args.folders:
        model, card = load_model(folder, device)
        model.to(memory_format=memory_format).eval()
        images = torch.rand(args.batch, *card.input_size, device=device).contiguous(memory_format=memory_format)
        views = 1 if args.single_view or card.task != "detection" else card.test_time_views
        if card.task == "detection":
            def call(m=model, x=images, v=views):
                return detections(m, x, device, views=v, score_thresh=0.25, nms_iou=0.5, max_det=100, amp=args.amp)
        else:
            def call(m=model, x=images):
                return classifier_logits(m, x, device, amp=args.amp)
        calls.append((str(folder), card, call, views))

    def timed(call) -> float:
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return 1000 * (time.perf_counter() - started)

    times: dict[str, list[float]] = {name: [] for name, *_ in calls}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for _, _, call, _ in calls:
                timed(call)
        for _ in range(args.rounds):
            for name, _, call, _ in calls:
                times[name].append(timed(call))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = describe_device(device) if device.type == "cuda" else f"{args.threads} CPU threads"
    print(f"batch {args.batch}, {where}, amp {args.amp}, {args.rounds} interleaved rounds, torch {torch.__version__}, "
          f"{platform.machine()}, load average {load:.2f}\n")
    print("| model | architecture | input | views | median ms per call | p90 ms | images/s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name, card, _, views in calls:
        values = sorted(times[name])
        median = statistics.median(values)
        row = {"folder": name, "architecture": card.architecture, "input_size": list(card.input_size), "views": views,
               "batch": args.batch, "median_ms": median, "p90_ms": values[math.ceil(0.9 * len(values)) - 1],
               "images_per_s": 1000 * args.batch / median}
        rows.append(row)
        c, h, w = card.input_size
        print(f"| {name} | {card.architecture} | {c}×{h}×{w} | {views} | {median:.1f} | "
              f"{row['p90_ms']:.1f} | {row['images_per_s']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": where, "threads": args.threads, "batch": args.batch,
                                               "amp": args.amp, "load": load, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
