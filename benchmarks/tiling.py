"""Full-resolution detection (issue 25): the detector's recall on large frames, whole-frame
letterbox against native-resolution tiles (``station.inference.tiling``), and the latency.

    python benchmarks/tiling.py --json docs/bench/tiling.json

Four sets of large frames, none of them seen in training:

- ``deeppcb-x3``: ``wbam-ffem-deeppcb``'s split-file test images (and their templates) upscaled
  ×3 to 1920×1920, boxes scaled: the same board, more pixels (the letterbox gives back the scale
  the detector was trained at, a tile sees each defect 3× larger).
- ``deeppcb-mosaic``: nine test images side by side, 1920×1920 at their own scale (a camera
  that sees more board at the training resolution; the letterbox shrinks every defect 3×).
- ``synth-5mp``: ``render_package(seed, defects=True, size=(1944, 2592))``: one package drawn at
  5 MP; the synthetic defects grow with the image, like ``deeppcb-x3``.
- ``synth-tray``: 4×4 packages of 480×640 side by side, 1920×2560 (4.9 MP), at the training scale
  of ``wbam-ffem-ic``, like ``deeppcb-mosaic``. Seeds from 900000, far from the training set's.
- ``deeppcb-640``, ``synth-640``: the baselines, the same test images and the trays' packages
  one by one at their own size (no tiling in the engine; the tiles are scored all the same).

Each frame is scored three ways from the same passes the engine runs (``networks.detections``
on the letterboxed frame, ``networks.tile_detections`` on its tiles, ``tiling.merge_detections``):
the whole frame alone (``tiling="off"``), the tiles alone, and the tiles merged with the whole
frame (what the engine does under ``tiling="auto"``). A ground-truth box is found when a box of
its class at the card's score threshold overlaps it by IoU ≥ 0.5 (greedy, best score first).
Latency: each way's network time per frame (p50), then ``Engine.run`` end to end on the first
``--engine-frames`` frames of each set, with the recipe's ``tiling`` off and auto, and how many
of those frames the familiarity check called unfamiliar (their boxes are then not reported).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from station.inference import Engine, InspectionRequest, Recipe
from station.inference.networks import detections, tile_detections
from station.inference.tiling import merge_detections, prepare_tiles, tile_size
from station.ml.cards import ModelCard, load_model, prepare_input
from station.synth import render_package
from station.users.approvals import ModelApprovals

WAYS = ("letterbox", "tiles", "tiles+whole")
SETS = ("deeppcb-640", "deeppcb-x3", "deeppcb-mosaic", "synth-640", "synth-5mp", "synth-tray")
MATCH_IOU = 0.5
SYNTH_SEED = 900000


@dataclasses.dataclass
class Frame:
    image: np.ndarray
    reference: np.ndarray | None
    boxes: np.ndarray  # [N, 4] frame pixels
    labels: np.ndarray  # [N] card class indices


def deeppcb_samples(model_dir: Path, data: Path, card: ModelCard, count: int, subset: str = "test"):
    """The first ``count`` images of a subset of the card's split file, as ``station evaluate`` picks them."""
    from station.training.datasets import read_dataset
    from station.training.evaluate import card_split_file, select_subset
    from station.training.splits import Split

    index = read_dataset(data, "deeppcb", classes=card.classes)
    chosen, _ = select_subset(index, Split.load(card_split_file(model_dir, card)), subset)
    return sorted(chosen.samples, key=lambda sample: sample.key)[:count]


def _read(path: Path) -> np.ndarray:
    from station.training.datasets import load_image

    return load_image(path)


def deeppcb_upscaled(samples, factor: int = 3):
    for sample in samples:
        image, reference = _read(sample.image_path), _read(sample.reference_path)
        height, width = image.shape[:2]
        size = (width * factor, height * factor)
        yield Frame(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
                    cv2.resize(reference, size, interpolation=cv2.INTER_LINEAR),
                    sample.boxes * factor, sample.labels)


def _mosaic(parts: list[Frame], columns: int) -> Frame:
    rows = [parts[i : i + columns] for i in range(0, len(parts), columns)]
    height, width = parts[0].image.shape[:2]
    boxes, labels = [], []
    for row_index, row in enumerate(rows):
        for column_index, part in enumerate(row):
            boxes.append(part.boxes + [column_index * width, row_index * height] * 2)
            labels.append(part.labels)
    image = np.concatenate([np.concatenate([p.image for p in row], axis=1) for row in rows], axis=0)
    reference = None
    if parts[0].reference is not None:
        reference = np.concatenate([np.concatenate([p.reference for p in row], axis=1) for row in rows], axis=0)
    return Frame(image, reference, np.concatenate(boxes).astype(np.float32), np.concatenate(labels))


def deeppcb_native(samples):
    for sample in samples:
        yield Frame(_read(sample.image_path), _read(sample.reference_path), sample.boxes, sample.labels)


def synth_singles(card: ModelCard, trays: int, first_seed: int = SYNTH_SEED + 10000):
    for seed in range(first_seed, first_seed + trays * 16):
        yield _synth_frame(seed, (480, 640), card)


def deeppcb_mosaics(samples, count: int):
    singles = [Frame(_read(s.image_path), _read(s.reference_path), s.boxes, s.labels) for s in samples]
    for index in range(count):
        yield _mosaic([singles[(index * 9 + k) % len(singles)] for k in range(9)], columns=3)


def _synth_frame(seed: int, size: tuple[int, int], card: ModelCard) -> Frame:
    sample = render_package(seed, defects=True, size=size)
    labels = np.array([card.classes.index(label) for label in sample.labels], dtype=np.int64)
    return Frame(sample.image, None, sample.boxes.reshape(-1, 4), labels)


def synth_5mp(card: ModelCard, count: int, first_seed: int = SYNTH_SEED):
    for index in range(count):
        yield _synth_frame(first_seed + index, (1944, 2592), card)


def synth_trays(card: ModelCard, count: int, first_seed: int = SYNTH_SEED + 10000):
    for index in range(count):
        seeds = range(first_seed + index * 16, first_seed + (index + 1) * 16)
        yield _mosaic([_synth_frame(seed, (480, 640), card) for seed in seeds], columns=4)


def matched(found: dict[str, torch.Tensor], frame: Frame) -> int:
    """Ground-truth boxes found by a box of their class at IoU ≥ MATCH_IOU, greedy by score."""
    if len(frame.boxes) == 0 or len(found["boxes"]) == 0:
        return 0
    overlaps = box_iou(found["boxes"].float().cpu(), torch.as_tensor(frame.boxes, dtype=torch.float32))
    same_class = found["labels"].cpu()[:, None] == torch.as_tensor(frame.labels)[None, :]
    overlaps = torch.where(same_class, overlaps, torch.zeros_like(overlaps))
    taken = torch.zeros(len(frame.boxes), dtype=torch.bool)
    for row in torch.argsort(found["scores"].cpu(), descending=True).tolist():
        candidates = overlaps[row].masked_fill(taken, 0.0)
        best = int(candidates.argmax())
        if candidates[best] >= MATCH_IOU:
            taken[best] = True
    return int(taken.sum())


def score_set(name: str, frames, model, card: ModelCard, device: torch.device, views: int) -> dict:
    thresholds = card.thresholds
    options = dict(views=views, score_thresh=thresholds.score, nms_iou=thresholds.nms_iou, max_det=thresholds.max_det)
    totals = {way: {"found": 0, "boxes": 0} for way in WAYS}
    times = {way: [] for way in WAYS}
    gt = frames_count = tiles = 0
    frame_hw = None
    for frame in frames:
        frame_hw = frame.image.shape[:2]
        prepared = prepare_input(frame.image, card, frame.reference)
        start = time.perf_counter()
        whole = detections(model, prepared.tensor[None], device, letterboxes=[prepared.letterbox], **options)[0]
        whole_s = time.perf_counter() - start
        start = time.perf_counter()
        prepared_tiles = prepare_tiles(frame.image, card, frame.reference)
        per_tile = tile_detections(model, prepared_tiles, card, device, **options)
        tiles_s = time.perf_counter() - start
        results = {"letterbox": whole, "tiles": merge_detections(per_tile, thresholds.max_det),
                   "tiles+whole": merge_detections(per_tile, thresholds.max_det, whole)}
        times["letterbox"].append(whole_s)
        times["tiles"].append(tiles_s)
        times["tiles+whole"].append(whole_s + tiles_s)
        for way, found in results.items():
            totals[way]["found"] += matched(found, frame)
            totals[way]["boxes"] += len(found["boxes"])
        gt += len(frame.boxes)
        frames_count += 1
        tiles = len(prepared_tiles.grid)
        print(f"  {name} {frames_count}: {gt} boxes so far, " + ", ".join(
            f"{way} {totals[way]['found']}" for way in WAYS), file=sys.stderr, flush=True)
    rows = {}
    for way in WAYS:
        found, boxes = totals[way]["found"], totals[way]["boxes"]
        recall, precision = found / max(gt, 1), found / max(boxes, 1)
        rows[way] = {"recall": recall, "precision": precision,
                     "f1": 2 * recall * precision / max(recall + precision, 1e-12), "found": found, "boxes": boxes,
                     "p50_ms": 1e3 * statistics.median(times[way])}
    return {"set": name, "frames": frames_count, "frame_hw": list(frame_hw or ()), "ground_truth": gt,
            "tiles_per_frame": tiles, "tile_hw": list(tile_size(card)), "views": views, "ways": rows}


def engine_latency(model_dir: Path, card: ModelCard, frames: list[Frame]) -> list[dict]:
    """``Engine.run`` per frame with the recipe's ``tiling`` off and auto, interleaved frame by
    frame so that a change in the machine's load falls on both alike."""
    engines = {
        tiling: Engine(Recipe(name=f"bench {card.name} {tiling}", detector=str(model_dir),
                              use_reference=card.uses_reference, tiling=tiling),
                       device="cpu", approvals=ModelApprovals.developer())
        for tiling in ("off", "auto")
    }
    totals = {tiling: [] for tiling in engines}
    unfamiliar = dict.fromkeys(engines, 0)
    tiles = dict.fromkeys(engines, 0)
    for index, frame in enumerate(frames):
        for tiling, engine in engines.items():
            result = engine.run(InspectionRequest(index, frame.image, frame.reference))
            totals[tiling].append(result.timings_ms["total"])
            unfamiliar[tiling] += result.unfamiliar
            tiles[tiling] = result.detector_tiles
    for engine in engines.values():
        engine.close()
    return [{"tiling": tiling, "frames": len(frames), "p50_ms": statistics.median(totals[tiling]),
             "unfamiliar": unfamiliar[tiling], "tiles": tiles[tiling], "views": card.test_time_views}
            for tiling in engines]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deeppcb-model", type=Path, default=Path("models/wbam-ffem-deeppcb"))
    parser.add_argument("--deeppcb-data", type=Path, default=Path("../shared/data/deeppcb"))
    parser.add_argument("--ic-model", type=Path, default=Path("models/wbam-ffem-ic"))
    parser.add_argument("--deeppcb-count", type=int, default=50, help="upscaled test images")
    parser.add_argument("--mosaics", type=int, default=12, help="3x3 mosaics of test images")
    parser.add_argument("--synth-count", type=int, default=30, help="5-MP synthetic packages")
    parser.add_argument("--trays", type=int, default=8, help="4x4 trays of synthetic packages")
    parser.add_argument("--views", type=int, default=None, help="test-time views (default: each card's)")
    parser.add_argument("--tile", type=int, default=None, help="tile side instead of the card's training crop")
    parser.add_argument("--engine-frames", type=int, default=5)
    parser.add_argument("--engine-only", action="store_true", help="only the Engine.run latency, no scoring")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"load average {os.getloadavg()[0]:.1f} at start", "threads": args.threads,
              "command": " ".join(["python", "benchmarks/tiling.py", *(argv or sys.argv[1:])]), "sets": []}
    for set_name in args.sets:
        model_dir = args.deeppcb_model if set_name.startswith("deeppcb") else args.ic_model
        model, card = load_model(model_dir, device)
        model.eval()
        if args.tile is not None:
            options = dict(card.training.options, crop=args.tile)
            card = dataclasses.replace(card, training=dataclasses.replace(card.training, options=options))
        if set_name.startswith("deeppcb"):
            samples = deeppcb_samples(model_dir, args.deeppcb_data, card, args.deeppcb_count)
        makers = {
            "deeppcb-x3": lambda: deeppcb_upscaled(samples),
            "deeppcb-mosaic": lambda: deeppcb_mosaics(samples, args.mosaics),
            "deeppcb-640": lambda: deeppcb_native(samples),
            "synth-5mp": lambda: synth_5mp(card, args.synth_count),
            "synth-tray": lambda: synth_trays(card, args.trays),
            "synth-640": lambda: synth_singles(card, args.trays),
        }
        frames = list(makers[set_name]())
        if args.engine_only:
            row = {"set": set_name, "frames": len(frames), "ways": {}}
        else:
            row = score_set(set_name, frames, model, card, device, args.views or card.test_time_views)
        if args.tile is None and args.engine_frames:
            row["engine"] = engine_latency(model_dir, card, frames[: args.engine_frames])
        report["sets"].append(row)
        print(json.dumps(row), flush=True)
    report["load_average_end"] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    return 0


def table(report: dict) -> str:
    lines = ["| set | frame | tiles (side) | GT boxes | way | recall | precision | F1 | network p50 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in report["sets"]:
        for way, values in row["ways"].items():
            height, width = row["frame_hw"]
            lines.append(f"| {row['set']} ({row['frames']}) | {width}×{height} | {row['tiles_per_frame']} "
                         f"({row['tile_hw'][0]}) | {row['ground_truth']} | {way} | {values['recall']:.3f} | "
                         f"{values['precision']:.3f} | {values['f1']:.3f} | {values['p50_ms']:.0f} |")
    engine_rows = [(row["set"], e) for row in report["sets"] for e in row.get("engine", [])]
    if engine_rows:
        lines += ["", "| set | recipe tiling | frames | views | Engine.run p50 ms | tiles | unfamiliar |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {name} | {e['tiling']} | {e['frames']} | {e['views']} | {e['p50_ms']:.0f} | {e['tiles']} | "
                  f"{e['unfamiliar']} |" for name, e in engine_rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
