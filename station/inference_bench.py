"""``station bench latency``: how long the station takes from a captured frame to a drawn result.

Each run reads a frame from a source (the simulated microscope by default), runs the recipe
through the inference engine and composes the overlay the GUI shows. Reported per stage
(capture, preprocess, classifier, detector, cam, render) and for the whole capture-to-result
path, as p50/p95 in milliseconds, after a few warm-up runs; also the process CPU time of the
whole path, steadier than wall time on a shared machine.

``--random-init`` replaces the recipe's models by random-init networks of the shipped sizes
(cti-tiny at 224x224, wbam-ffem-nano at 640x640): a pure speed figure for when the trained
bundles are not there yet. Their maps use a placeholder CAM range; speed is all they measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "IC package (demo)"
REPORTED_STAGES = ("capture", "preprocess", "classifier", "detector", "cam", "render")


def configure(parser: argparse.ArgumentParser, name: str = "latency") -> None:
    parser.description = "Latency from a captured frame to a drawn result, per stage and in all (p50/p95)."
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"recipe name (default: {DEFAULT_RECIPE!r})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default: 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
    parser.add_argument("--no-attention", action="store_true", help="do not compute attention maps")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto",
                        help="the networks' arithmetic (default: auto, as the capture window: ONNX Runtime on the CPU)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--random-init", action="store_true", help="random-init models of the shipped sizes (a speed figure only)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads for torch (default: 2, as in the target; 0: torch's choice)"
    )
    parser.add_argument("--source", default="demo", help="frame source spec (default: demo, the simulated microscope)")


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(np.asarray(samples_ms, dtype=np.float64), [50, 95])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2)}


def _missing_models(recipe) -> list[Path]:
    references = [r for r in (recipe.classifier, recipe.detector) if r is not None]
    return [recipe.model_dir(r) for r in references if not (recipe.model_dir(r) / "card.json").is_file()]


def random_init_recipe(recipe, directory: Path):
    """``recipe`` with each of its models replaced by a random-init one saved under ``directory``."""
    import torch

    from station.ml.cards import IMAGENET_MEAN, IMAGENET_STD, CamReference, ModelCard, Preprocessing, save_model
    from station.ml.registry import build_model

    torch.manual_seed(0)
    changes: dict[str, Any] = {}
    if recipe.classifier is not None:
        classes = sorted(recipe.decap_methods) or ["plastic", "ceramic", "metallic"]
        kwargs = {"num_classes": len(classes), "in_chans": 3}
        card = ModelCard(
            name="random-init cti-tiny",
            task="classification",
            architecture="cti-tiny",
            build_kwargs=kwargs,
            classes=classes,
            input_size=(3, 224, 224),
            preprocessing=Preprocessing(resize="resize", mean=IMAGENET_MEAN, std=IMAGENET_STD),
            cam_reference=CamReference(low=0.0, high=1.0),
        )
        save_model(directory / "classifier", build_model("cti-tiny", **kwargs), card)
        changes["classifier"] = str(directory / "classifier")
    if recipe.detector is not None:
        input_mode = "gray+ref" if recipe.use_reference else "rgb"
        channels = 2 if recipe.use_reference else 3
        kwargs = {"num_classes": 6, "input_mode": input_mode}
        card = ModelCard(
            name="random-init wbam-ffem-nano",
            task="detection",
            architecture="wbam-ffem-nano",
            build_kwargs=kwargs,
            classes=[f"class {i}" for i in range(6)],
            input_size=(channels, 640, 640),
            input_mode=input_mode,
            preprocessing=Preprocessing(resize="letterbox", mean=(0.0,) * channels, std=(1.0,) * channels),
            cam_reference=CamReference(low=0.0, high=1.0),
        )
        save_model(directory / "detector", build_model("wbam-ffem-nano", **kwargs), card)
        changes["detector"] = str(directory / "detector")
    return dataclasses.replace(recipe, name=f"{recipe.name} (random-init)", origin=None, **changes)


def measure(
    engine, source, runs: int, warmup: int, want_attention: bool, reference: np.ndarray | None
) -> dict[str, Any]:
    """Time ``warmup + runs`` capture -> inference -> overlay passes; figures of the timed ones."""
    from station.inference import InspectionRequest
    from station.render import compose_overlay

    samples: dict[str, list[float]] = {stage: [] for stage in REPORTED_STAGES}
    whole: list[float] = []
    cpu: list[float] = []
    for index in range(warmup + runs):
        cpu_start = time.process_time()
        start = time.perf_counter()
        frame = source.read()
        if frame is None:
            raise RuntimeError(f"the source {source.describe()} ran out of frames after {index} reads")
        captured = time.perf_counter()
        result = engine.run(InspectionRequest(index, frame.image, reference, want_attention=want_attention))
        inferred = time.perf_counter()
        compose_overlay(frame.image, result, show_attention=want_attention)
        finished = time.perf_counter()
        cpu_used = time.process_time() - cpu_start
        if index < warmup:
            continue
        samples["capture"].append((captured - start) * 1000)
        for stage in ("preprocess", "classifier", "detector", "cam"):
            samples[stage].append(result.timings_ms[stage])
        samples["render"].append((finished - inferred) * 1000)
        whole.append((finished - start) * 1000)
        cpu.append(cpu_used * 1000)
    return {
        "stages": {stage: percentiles(values) for stage, values in samples.items()},
        "capture_to_result": percentiles(whole),
        # CPU time of all the process's threads: on a shared, busy machine a steadier figure
        # of the work done than wall time
        "capture_to_result_cpu": percentiles(cpu),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from station.inference import EngineError, load_recipes

    if args.runs < 1 or args.warmup < 0:
        print("station bench latency: --runs must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    recipes = load_recipes()
    if args.recipe not in recipes:
        print(f"station bench latency: no recipe {args.recipe!r}; have: {', '.join(sorted(recipes))}", file=sys.stderr)
        return 2
    recipe = recipes[args.recipe]
    missing = _missing_models(recipe)
    if missing and not args.random_init:
        print(
            f"station bench latency: the models of recipe {recipe.name!r} are not installed: "
            + ", ".join(str(path) for path in missing)
            + ".\nTrain and export them (station train ...), point STATION_MODELS at them, "
            "or pass --random-init for a speed figure with untrained networks of the same size.",
            file=sys.stderr,
        )
        return 2

    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="station-bench-") as scratch:
            if args.random_init:
                recipe = random_init_recipe(recipe, Path(scratch))
            report = _bench(recipe, args)
    except (EngineError, ValueError, RuntimeError) as exc:
        print(f"station bench latency: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    print(json.dumps(report, indent=2) if args.json else _table(report))
    return 0


def _bench(recipe, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from station.capture.sources import DEMO_SPECS, open_source
    from station.inference import Engine

    engine = Engine(recipe, device=args.device, backend=args.backend)
    try:
        # the simulator unpaced: the bench measures work, not waiting for the next 30-fps slot
        options = {"paced": False} if args.source.strip().lower() in DEMO_SPECS else {}
        with open_source(args.source, **options) as source:
            # a reference recipe compares against a template: the first frame serves as one
            first = source.read() if recipe.use_reference else None
            reference = first.image if first is not None else None
            figures = measure(engine, source, args.runs, args.warmup, not args.no_attention, reference)
        device = engine.device_description
    finally:
        engine.close()
    return {
        "device": device,
        "recipe": recipe.name,
        "attention": not args.no_attention,
        "runs": args.runs,
        "threads": torch.get_num_threads(),
        **figures,
    }


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['recipe']} on {report['device']}, attention {'on' if report['attention'] else 'off'}, "
        f"{report['runs']} runs",
        f"{'stage':<20}{'p50 ms':>10}{'p95 ms':>10}",
    ]
    for stage, figures in report["stages"].items():
        lines.append(f"{stage:<20}{figures['p50_ms']:>10.1f}{figures['p95_ms']:>10.1f}")
    whole, cpu = report["capture_to_result"], report["capture_to_result_cpu"]
    lines.append(f"{'capture-to-result':<20}{whole['p50_ms']:>10.1f}{whole['p95_ms']:>10.1f}")
    lines.append(f"{'  (CPU time)':<20}{cpu['p50_ms']:>10.1f}{cpu['p95_ms']:>10.1f}")
    return "\n".join(lines)
