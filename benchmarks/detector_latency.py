"""CPU latency of the WBAM-FFEM detector against peers, batch 1, measured in one run.

    python benchmarks/detector_latency.py                      # nano at 640 and 320, 2 threads
    python benchmarks/detector_latency.py --configs wbam-ffem-nano wbam-ffem-small --json latency.json

Peers: torchvision's fasterrcnn_mobilenet_v3_large_fpn and ssdlite320_mobilenet_v3_large (random
weights, no download; their forward includes resizing and NMS), and YOLO11n when ``ultralytics``
is importable (built from ``yolo11n.yaml``, no weights; Conv+BN fused as Ultralytics deploys it).
ultralytics is not a project dependency: install it into a throwaway environment to compare.

The models are timed in interleaved rounds (one call of each per round), so a change in the
machine's load affects all of them alike: compare figures within one run, not across runs.
Targets from the issue: wbam-ffem-nano at 640 faster than YOLO11n, at 320 at most 35 ms.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from station.ml.wbam_ffem import INPUT_CHANNELS, build

NANO_320_BUDGET_MS = 35.0


@dataclass
class Candidate:
    name: str
    size: int
    run: Callable[[], object]
    params_m: float
    gmacs: float | None  # multiply-adds x1e-9 (Ultralytics' "GFLOPs" are twice this)
    note: str = ""


@dataclass
class Row:
    name: str
    size: int
    params_m: float
    gmacs: float | None
    median_ms: float
    p90_ms: float
    min_ms: float
    note: str


def _params_m(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def _gmacs(run: Callable[[], object]) -> float | None:
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            run()
    except Exception:  # a model the counter cannot trace is still timed
        return None
    return counter.get_total_flops() / 2 / 1e9  # the counter counts 2 FLOPs per multiply-add


def _candidate(name: str, size: int, model: torch.nn.Module, run: Callable[[], object], note: str = "") -> Candidate:
    return Candidate(name, size, run, _params_m(model), _gmacs(run), note)


def wbam_ffem_candidates(config: str, sizes: list[int], input_mode: str, with_predict: bool) -> list[Candidate]:
    model = build(config, input_mode=input_mode).eval()
    candidates = []
    for size in sizes:
        images = torch.randn(1, INPUT_CHANNELS[input_mode], size, size)
        candidates.append(_candidate(config, size, model, lambda m=model, x=images: m(x), f"forward, {input_mode}"))
        if with_predict:
            candidates.append(
                _candidate(f"{config} predict", size, model, lambda m=model, x=images: m.predict(x), "forward + NMS")
            )
    return candidates


def yolo11n_candidates(sizes: list[int]) -> tuple[list[Candidate], str | None]:
    """YOLO11n from its yaml when ultralytics imports; else the reason it was skipped."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        return [], f"YOLO11n skipped: ultralytics does not import ({exc})"
    model = YOLO("yolo11n.yaml").model.fuse().eval()
    # channels-last as well, the layout the station's engine keeps its models in: the fair torch comparison
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    candidates = []
    for size in sizes:
        images = torch.randn(1, 3, size, size)
        candidates.append(_candidate("yolo11n", size, model, lambda m=model, x=images: m(x), "fused, no NMS"))
        candidates.append(_candidate("yolo11n channels-last", size, channels_last,
                                     lambda m=channels_last, x=images: m(x), "fused, no NMS, channels-last"))
    return candidates, None


def bundled_candidates(folder: str) -> list[Candidate]:
    """A bundled detector with its trained weights at its card's size, as the engine loads it (batch
    normalisations folded, channels-last): ``predict()`` at the card's thresholds (trained weights
    pass more boxes to NMS than a fresh network), under torch and ONNX Runtime."""
    from pathlib import Path

    from station.inference.loading import load_for_role
    from station.ml.onnx_export import export_onnx
    from station.ml.onnx_runtime import load_onnx

    loaded = load_for_role("detector", Path(folder), "detection")
    model, card = loaded.model, loaded.card
    images = torch.rand(1, *card.input_size)
    options = {"score_thresh": card.thresholds.score, "nms_iou": card.thresholds.nms_iou,
               "max_det": card.thresholds.max_det}
    onnx_path = os.path.join(tempfile.mkdtemp(), f"{card.name}.onnx")
    export_onnx(folder, onnx_path)
    runner = load_onnx(onnx_path, threads=torch.get_num_threads())
    size = card.input_size[1]
    return [
        _candidate(f"{card.name} predict", size, model, lambda: model.predict(images, **options), "card weights, torch"),
        Candidate(f"{card.name} predict onnxruntime", size, lambda: runner.predict(images, **options),
                  _params_m(model), None, "card weights, ONNX Runtime"),
    ]


def yolo11n_onnx_candidates(sizes: list[int]) -> list[Candidate]:
    """YOLO11n exported to ONNX and run by ONNX Runtime, for a same-runtime comparison."""
    import onnxruntime
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml").model.fuse().eval()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    candidates = []
    for size in sizes:
        images = torch.randn(1, 3, size, size)
        path = os.path.join(tempfile.mkdtemp(), f"yolo11n-{size}.onnx")
        torch.onnx.export(model, images, path, opset_version=17, input_names=["images"], dynamo=False)
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        candidates.append(Candidate("yolo11n onnxruntime", size,
                                    lambda s=session, x=images.numpy(): s.run(None, {"images": x}),
                                    _params_m(model), None, "fused, no NMS, ONNX Runtime"))
    return candidates


def torchvision_candidates(sizes: list[int], num_classes: int = 7) -> list[Candidate]:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn, ssdlite320_mobilenet_v3_large

    candidates = []
    for size in sizes:
        image = [torch.rand(3, size, size)]
        faster = fasterrcnn_mobilenet_v3_large_fpn(
            weights=None, weights_backbone=None, num_classes=num_classes, min_size=size, max_size=size
        ).eval()
        candidates.append(
            _candidate("fasterrcnn_mobilenet_v3_large_fpn", size, faster, lambda m=faster, x=image: m(x), "incl. NMS")
        )
        ssd = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes).eval()
        ssd.transform.fixed_size = (size, size)  # its builder fixes 320x320; time it at each size
        candidates.append(
            _candidate("ssdlite320_mobilenet_v3_large", size, ssd, lambda m=ssd, x=image: m(x), "incl. NMS")
        )
    return candidates


def time_interleaved(candidates: list[Candidate], rounds: int, warmup: int) -> list[Row]:
    samples: list[list[float]] = [[] for _ in candidates]
    with torch.inference_mode():
        for candidate in candidates:
            for _ in range(warmup):
                candidate.run()
        for _ in range(rounds):
            for candidate, times in zip(candidates, samples):
                start = time.perf_counter()
                candidate.run()
                times.append((time.perf_counter() - start) * 1e3)
    rows = []
    for candidate, times in zip(candidates, samples):
        ordered = sorted(times)
        rows.append(
            Row(
                name=candidate.name,
                size=candidate.size,
                params_m=round(candidate.params_m, 3),
                gmacs=None if candidate.gmacs is None else round(candidate.gmacs, 2),
                median_ms=round(statistics.median(ordered), 2),
                p90_ms=round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
                min_ms=round(ordered[0], 2),
                note=candidate.note,
            )
        )
    return rows


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'model':<36} {'input':>5} {'params M':>9} {'GMACs':>7} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}  note"
    )
    lines = [header, "-" * len(header)]
    for row in sorted(rows, key=lambda r: (-r.size, r.median_ms)):
        gmacs = "-" if row.gmacs is None else f"{row.gmacs:.2f}"
        lines.append(
            f"{row.name:<36} {row.size:>5} {row.params_m:>9.2f} {gmacs:>7} {row.median_ms:>10.1f} "
            f"{row.p90_ms:>8.1f} {row.min_ms:>8.1f}  {row.note}"
        )
    return "\n".join(lines)


def check_targets(rows: list[Row]) -> list[str]:
    """The issue's speed targets for wbam-ffem-nano; each line starts with PASS, FAIL or SKIP."""
    by_key = {(row.name, row.size): row for row in rows}
    verdicts = []
    nano_640, yolo_640 = by_key.get(("wbam-ffem-nano", 640)), by_key.get(("yolo11n", 640))
    if nano_640 and yolo_640:
        ok = nano_640.median_ms < yolo_640.median_ms
        verdicts.append(
            f"{'PASS' if ok else 'FAIL'} wbam-ffem-nano 640: {nano_640.median_ms:.1f} ms "
            f"{'<' if ok else '>='} yolo11n {yolo_640.median_ms:.1f} ms"
        )
    elif nano_640:
        verdicts.append(f"SKIP wbam-ffem-nano 640: {nano_640.median_ms:.1f} ms, no YOLO11n in this run to compare")
    nano_320 = by_key.get(("wbam-ffem-nano", 320))
    if nano_320:
        ok = nano_320.median_ms <= NANO_320_BUDGET_MS
        verdicts.append(
            f"{'PASS' if ok else 'FAIL'} wbam-ffem-nano 320: {nano_320.median_ms:.1f} ms "
            f"{'<=' if ok else '>'} {NANO_320_BUDGET_MS:.0f} ms"
        )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["wbam-ffem-nano"], help="WBAM-FFEM configs to time")
    parser.add_argument("--sizes", nargs="+", type=int, default=[640, 320], help="square input sides")
    parser.add_argument("--input-mode", default="rgb", choices=sorted(INPUT_CHANNELS))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=30, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="skip YOLO11n and the torchvision peers")
    parser.add_argument("--no-predict", action="store_true", help="time forward() only, not predict()")
    parser.add_argument("--model", action="append", default=[], metavar="DIR",
                        help="also time a bundled detector folder at its card's size (torch and ONNX Runtime)")
    parser.add_argument("--onnx", action="store_true", help="also time YOLO11n under ONNX Runtime")
    parser.add_argument("--json", metavar="PATH", help="also write the rows and verdicts as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a speed target is missed")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    candidates: list[Candidate] = []
    for config in args.configs:
        candidates += wbam_ffem_candidates(config, args.sizes, args.input_mode, not args.no_predict)
    for folder in args.model:
        candidates += bundled_candidates(folder)
    notes = []
    if args.onnx and not args.no_peers:
        candidates += yolo11n_onnx_candidates(args.sizes)
    if not args.no_peers:
        yolo, skipped = yolo11n_candidates(args.sizes)
        candidates += yolo
        notes += [skipped] if skipped else []
        candidates += torchvision_candidates(args.sizes)

    load_before = os.getloadavg()[0]
    rows = time_interleaved(candidates, args.rounds, args.warmup)
    load_after = os.getloadavg()[0]
    verdicts = check_targets(rows)
    print(
        f"batch 1, {args.threads} threads, {args.rounds} interleaved rounds; torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after (other jobs slow every model)"
    )
    print(format_table(rows))
    for line in notes + verdicts:
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "command": " ".join([os.path.basename(sys.argv[0]), *(argv if argv is not None else sys.argv[1:])]),
                    "threads": args.threads,
                    "rounds": args.rounds,
                    "torch": torch.__version__,
                    "load_average": [round(load_before, 2), round(load_after, 2)],
                    "rows": [asdict(row) for row in rows],
                    "notes": notes,
                    "verdicts": verdicts,
                },
                handle,
                indent=2,
            )
    return 1 if args.check and any(v.startswith("FAIL") for v in verdicts) else 0


if __name__ == "__main__":
    raise SystemExit(main())
