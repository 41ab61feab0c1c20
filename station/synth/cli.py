"""``station synth``: render synthetic IC package datasets and contact sheets.

    station synth --out data/synth --count 3000 --format folder          # classifier data
    station synth --out data/defects --count 2000 --defects --format voc # detector data
    station synth --contact-sheet sheet.png --defects                    # look at them
    station synth --benchmark                                            # render and demo speed

Image i uses seed S + i and material MATERIALS[i % 3] (balanced classes) unless
``--material`` fixes one, so any image is re-rendered by
``render_package(S + i, material, defects, size)``; ``manifest.jsonl`` records both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from station.synth.formats import FORMATS, DatasetWriter, contact_sheet, write_png
from station.synth.packages import MATERIALS
from station.synth.render import SynthSample, render_package

DEFAULT_COUNT = 100
DEFAULT_SHEET_COLUMNS = 6


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="dataset folder to write (created if missing)")
    parser.add_argument("--count", type=int, help=f"number of images (default {DEFAULT_COUNT}, or a sheet's worth)")
    parser.add_argument("--defects", action="store_true", help="draw micro defects and write their boxes")
    parser.add_argument("--seed", type=int, default=0, help="seed of image 0; image i uses seed + i (default 0)")
    parser.add_argument("--format", choices=FORMATS, default="folder",
                        help="folder: one folder per material; voc: images/ + annotations/*.xml; "
                             "yolo: images/ + labels/*.txt + classes.txt + data.yaml (default folder)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(480, 640),
                        help="image height and width in px (default 480 640)")
    parser.add_argument("--material", choices=MATERIALS, help="render only this material (default: all, balanced)")
    parser.add_argument("--contact-sheet", type=Path, metavar="PNG",
                        help="also write a contact sheet: one row per material")
    parser.add_argument("--columns", type=int, default=DEFAULT_SHEET_COLUMNS,
                        help=f"contact sheet images per material (default {DEFAULT_SHEET_COLUMNS})")
    parser.add_argument("--benchmark", action="store_true",
                        help="measure render time per image on one thread and the simulated microscope's "
                             "frame rate (uses --count, --size, --defects); writes nothing")


def run(args: argparse.Namespace) -> int:
    if args.benchmark:
        return _benchmark(args)
    if args.out is None and args.contact_sheet is None:
        return _usage_error("give --out DIR (a dataset) and/or --contact-sheet PNG")
    count = args.count if args.count is not None else (DEFAULT_COUNT if args.out else 3 * args.columns)
    if count < 1:
        return _usage_error(f"--count must be at least 1, got {count}")
    height, width = args.size
    if height < 32 or width < 32:
        return _usage_error(f"--size {height} {width} is too small (at least 32 32)")
    if args.columns < 1:
        return _usage_error(f"--columns must be at least 1, got {args.columns}")

    sheet_samples: list[SynthSample] = []
    writer = DatasetWriter(args.out, args.format) if args.out else None
    started = time.perf_counter()
    try:
        progress = tqdm(range(count), desc="station synth", unit="img", file=sys.stderr, mininterval=0.5)
        for index in progress:
            material = args.material or MATERIALS[index % len(MATERIALS)]
            sample = render_package(args.seed + index, material=material, defects=args.defects, size=(height, width))
            if writer is not None:
                writer.add(index, sample)
            if args.contact_sheet and sum(s.material == sample.material for s in sheet_samples) < args.columns:
                sheet_samples.append(sample)
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - started

    if writer is not None:
        per_material = ", ".join(f"{m} {n}" for m, n in writer.counts.items() if n)
        defects = f"; {writer.defect_count} defects" if args.defects else ""
        print(f"wrote {count} images ({per_material}{defects}) as {args.format} to {args.out} in {elapsed:.1f} s")
    if args.contact_sheet:
        write_png(args.contact_sheet, contact_sheet(sheet_samples, columns=args.columns))
        print(f"wrote contact sheet {args.contact_sheet} ({len(sheet_samples)} images)")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    import cv2

    from station.capture.simulated import SimulatedMicroscope

    cv2.setNumThreads(1)  # the target is per core: training renders on worker processes
    count = args.count or 60
    height, width = args.size
    render_package(args.seed, defects=args.defects, size=(height, width))  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        render_package(args.seed + index, material=MATERIALS[index % 3], defects=args.defects, size=(height, width))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"render_package {width}x{height} defects={args.defects}: {1000 * cpu / count:.1f} ms CPU, "
          f"{1000 * wall / count:.1f} ms wall per image (one OpenCV thread, {count} images)")

    with SimulatedMicroscope(width=width, height=height, paced=False, seconds_per_package=1.0) as demo:
        frames, wall, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - wall < 3.0:
            demo.read()
            frames += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"simulated microscope unpaced: {frames / wall:.0f} fps, {1000 * cpu / frames:.2f} ms CPU per frame "
          f"(new package every 1 s included)")
    with SimulatedMicroscope(width=width, height=height, fps=30.0) as demo:
        frames, wall = 0, time.perf_counter()
        while time.perf_counter() - wall < 3.0:
            demo.read()
            frames += 1
        wall = time.perf_counter() - wall
    print(f"simulated microscope paced at 30 fps: {frames / wall:.1f} fps delivered over {wall:.1f} s")
    return 0


def _usage_error(message: str) -> int:
    print(f"station synth: error: {message}", file=sys.stderr)
    return 2
