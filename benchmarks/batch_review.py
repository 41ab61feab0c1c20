"""Batch-review throughput: images per second through the whole pipeline, and what limits it.

    python benchmarks/batch_review.py                      # demo recipe, no attention maps, 2 threads
    python benchmarks/batch_review.py --random-init        # untrained networks of the shipped sizes
    python benchmarks/batch_review.py --device cuda --count 512 --batch-size 64

Writes ``--count`` distinct synthetic package photos (JPEG, ``--size``) to a scratch folder and
reviews it with ``station.review.runner`` exactly as ``station batch`` does (read, sha256,
decode, thumbnail, card preprocessing on the decode threads; batched classifier + detector on
the calling thread), in a scratch ``STATION_HOME``. It then times the two halves alone, decode
(threads only) and inference (prepared batches only), so the report says which one bounds the
pipeline. ``--threads`` sets torch's CPU threads (2, as in the target). On a shared machine the
wall-clock figures follow the load; ``pipeline_cpu_ms_per_image`` (process CPU time per image)
does not, and ``cpu_bound_images_per_s_on_these_cores`` is the rate that CPU time allows on
otherwise idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _write_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    import cv2
    import numpy as np

    from station.synth import render_package

    folder.mkdir(parents=True, exist_ok=True)
    distinct = [render_package(seed, defects=seed % 2 == 0, size=size).image for seed in range(min(count, 8))]
    rng = np.random.default_rng(0)
    for index in range(count):
        image = distinct[index % len(distinct)].copy()
        image[rng.integers(0, size[0]), rng.integers(0, size[1])] = rng.integers(0, 255, 3)  # every file distinct
        cv2.imwrite(str(folder / f"frame{index:05d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="IC package (demo)")
    parser.add_argument("--random-init", action="store_true", help="untrained networks of the shipped sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--count", type=int, default=96, help="images in the folder")
    parser.add_argument("--size", default="960x1280", help="image HEIGHTxWIDTH (default 960x1280, the camera's)")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: the runner's)")
    parser.add_argument("--workers", type=int, help="decode threads (default: the runner's)")
    parser.add_argument("--lanes", type=int, help="CPU inference lanes (default: the runner's: torch's threads)")
    parser.add_argument("--attention", action="store_true", help="with attention maps (Engine.run per image)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="station-batch-bench-") as scratch:
        return _bench(args, Path(scratch))


def _bench(args: argparse.Namespace, scratch: Path) -> int:
    os.environ["STATION_HOME"] = str(scratch / "home")
    import torch

    from station.inference import Engine, load_recipes
    from station.inference_bench import random_init_recipe
    from station.inference.networks import classifier_logits, detections, to_device
    from station.review.runner import BatchRunner, RunOptions, _one_torch_thread
    from station.review.scan import scan_folder
    from station.review.store import BatchStore, WorkItem
    from station.review.thumbnails import ThumbnailCache

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    recipe = load_recipes()[args.recipe]
    installed = all((recipe.model_dir(m) / "card.json").is_file() for m in (recipe.classifier, recipe.detector) if m)
    if args.random_init or not installed:
        if not args.random_init:
            print(f"models of {recipe.name!r} are not installed: using random-init networks of the shipped sizes",
                  file=sys.stderr)
        recipe = random_init_recipe(recipe, scratch / "models")
    height, width = (int(v) for v in args.size.lower().split("x"))
    folder = scratch / "folder"
    _write_images(folder, args.count, (height, width))

    engine = Engine(recipe, device=args.device)
    scan = scan_folder(folder)
    thumbnails = ThumbnailCache()
    with BatchStore.for_folder(folder, recipe.name) as store:
        options = RunOptions(want_attention=args.attention, batch_size=args.batch_size, decode_workers=args.workers,
                             inference_lanes=args.lanes)
        runner = BatchRunner(engine, store, folder, options=options, thumbnails=thumbnails)
        work = runner.plan(scan)
        cpu_start = time.process_time()
        summary = runner.run(work)
        cpu_s = time.process_time() - cpu_start

        # the halves alone: decode threads without the networks, the networks without decoding
        from concurrent.futures import ThreadPoolExecutor

        runner.thumbnails = ThumbnailCache(scratch / "thumbnails-cold")  # thumbnails are written again, as in the run
        start, cpu_start = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(runner.decode_workers, initializer=_one_torch_thread) as pool:
            reads = list(pool.map(runner._read, [WorkItem(w.item_id, w.relative_path, "pending", None) for w in work]))
        decode_s, decode_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        prepared = [r for r in reads if r.prepared is not None]
        batches = [prepared[i : i + runner.batch_size] for i in range(0, len(prepared), runner.batch_size)]
        start = time.perf_counter()
        if runner.inference_lanes > 1:  # as the runner does: single-threaded lanes side by side
            with ThreadPoolExecutor(runner.inference_lanes, initializer=_one_torch_thread) as lanes:
                list(lanes.map(runner._inspect, batches))
        else:
            for batch in batches:
                runner._inspect(batch)
        infer_s = time.perf_counter() - start
        # CPU cost of each network alone, one thread, one batch after another
        torch.set_num_threads(1)
        network_cpu_ms = {}

        def classify(batch):
            images = to_device([r.prepared.inputs["classifier"].tensor for r in batch], engine.device)
            return classifier_logits(engine.classifier.model, images, engine.device)

        def detect(batch):
            inputs = [r.prepared.inputs["detector"] for r in batch]
            thresholds = engine.thresholds
            return detections(engine.detector.model, to_device([i.tensor for i in inputs], engine.device),
                              engine.device, views=engine.detector.card.test_time_views,
                              score_thresh=thresholds["score_threshold"], nms_iou=thresholds["nms_iou"],
                              max_det=int(thresholds["max_detections"]), letterboxes=[i.letterbox for i in inputs])

        for name, stage in (("classifier", classify), ("detector", detect)):
            if getattr(engine, name) is None:
                continue
            stage(batches[0])
            cpu_start = time.process_time()
            for batch in batches:
                stage(batch)
            network_cpu_ms[name] = round((time.process_time() - cpu_start) * 1000 / len(prepared), 1)
        torch.set_num_threads(args.threads or torch.get_num_threads())

    report = {
        "recipe": recipe.name,
        "device": engine.device_description,
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "images": summary.inspected,
        "image_size": [height, width],
        "attention": args.attention,
        "batch_size": runner.batch_size,
        "inference_lanes": runner.inference_lanes,
        "decode_workers": runner.decode_workers,
        "pipeline_images_per_s": round(summary.images_per_s, 2),
        # CPU time the process spent per image (all threads): the pipeline's work, whatever the load;
        # on otherwise idle cores it cannot run faster than cores / this
        "pipeline_cpu_ms_per_image": round(cpu_s * 1000 / max(1, summary.inspected), 1),
        "decode_only_images_per_s": round(len(reads) / decode_s, 2),
        "cpu_ms_per_image": {
            "read+hash+decode+thumbnail+preprocess": round(decode_cpu_s * 1000 / len(reads), 1), **network_cpu_ms,
        },
        "inference_only_images_per_s": round(len(prepared) / infer_s, 2),
    }
    report["cpu_bound_images_per_s_on_these_cores"] = round(report["cpu_cores"] * 1000 / report["pipeline_cpu_ms_per_image"], 1)
    report["limited_by"] = (
        "inference" if report["inference_only_images_per_s"] <= report["decode_only_images_per_s"] else "decode"
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>28}: {value}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
