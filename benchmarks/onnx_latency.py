"""CPU latency of ONNX Runtime against torch for model folders, timed in one run.

    python benchmarks/onnx_latency.py models/cti-ic-material models/wbam-ffem-ic --threads 2 --json out.json

Each folder is exported (``station.ml.onnx_export``) to a temporary file; then torch and ONNX
Runtime are called in interleaved rounds (one call of each per round, one image at the card's
input size), so a change in the machine's load hits both alike. Classifiers are timed through
``forward()`` / the logits; detectors through ``predict()`` (dense outputs, threshold, NMS) at
the card's thresholds, one view. Also reports the largest logit / score difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from station.ml.cards import load_model
from station.ml.onnx_export import export_onnx
from station.ml.onnx_runtime import load_onnx


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both runtimes (default 2)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for folder in args.folders:
            model, card = load_model(folder)
            onnx_path = Path(scratch) / f"{card.name}.onnx"
            export_onnx(folder, onnx_path)
            runner = load_onnx(onnx_path, threads=args.threads)
            images = torch.rand(1, *card.input_size, generator=torch.Generator().manual_seed(0))
            if card.task == "detection":
                options = {"score_thresh": card.thresholds.score, "nms_iou": card.thresholds.nms_iou,
                           "max_det": card.thresholds.max_det}
                calls = {"torch": lambda: model.predict(images, **options), "onnxruntime": lambda: runner.predict(images, **options)}
            else:
                calls = {"torch": lambda: model(images), "onnxruntime": lambda: runner(images)}
            times: dict[str, list[float]] = {name: [] for name in calls}
            with torch.inference_mode():
                for round_index in range(args.warmup + args.rounds):
                    for name, call in calls.items():
                        start = time.perf_counter()
                        call()
                        if round_index >= args.warmup:
                            times[name].append((time.perf_counter() - start) * 1000)
                if card.task == "classification":
                    difference = float((model(images) - runner(images)).abs().max())
                else:
                    ours, theirs = runner.predict(images, **options)[0], model.predict(images, **options)[0]
                    same = len(ours["labels"]) == len(theirs["labels"]) and torch.equal(ours["labels"], theirs["labels"])
                    difference = float((ours["scores"] - theirs["scores"]).abs().max()) if same and len(ours["scores"]) else (0.0 if same else float("nan"))
            row = {"model": card.name, "architecture": card.architecture, "task": card.task,
                   "input_size": list(card.input_size), "max_abs_difference": difference}
            for name, values in times.items():
                row[f"{name}_p50_ms"] = round(statistics.median(values), 2)
                row[f"{name}_p90_ms"] = round(_percentile(values, 0.9), 2)
            row["speedup_p50"] = round(row["torch_p50_ms"] / row["onnxruntime_p50_ms"], 2)
            rows.append(row)
            print(f"{card.name:<20} torch {row['torch_p50_ms']:7.1f} ms  onnxruntime {row['onnxruntime_p50_ms']:7.1f} ms "
                  f"(p50; {row['speedup_p50']:.2f}x)  max |diff| {difference:.2e}")
    if args.json:
        import onnxruntime

        meta = {"command": "python " + " ".join(sys.argv), "threads": args.threads, "rounds": args.rounds,
                "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(), "load_average": os.getloadavg()}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
