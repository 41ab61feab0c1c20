"""``station objectives``: the microscope's objectives and their image scale (µm per pixel).

    station objectives                                   # the objectives, the one in use marked
    station objectives calibrate 20x micrometer.png --pitch-um 10 [--use]
    station objectives set 5x --um-per-px 2.05 [--use]   # a scale known from elsewhere
    station objectives use 20x                           # the objective now on the microscope
    station objectives remove 5x

``calibrate`` measures the pitch of a stage micrometer's ruling lines in its image (docs/CAMERAS.md)
and stores pitch_um / pitch_px. Everything goes into the user's settings file; every capture's
audit record keeps the objective's name and scale at the time. Exit codes: 0 done; 1 the image
shows no measurable ruling or the objective is unknown; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from station.labels import scale_text


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="objectives_command", metavar="ACTION")
    listing = sub.add_parser("list", help="the objectives, the one in use marked (the default)")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    calibrate = sub.add_parser("calibrate", help="measure the scale from an image of a stage micrometer")
    calibrate.add_argument("name", help="the objective, e.g. 20x (added if new)")
    calibrate.add_argument("image", type=Path, help="an image of the micrometer's ruling, taken through this objective")
    calibrate.add_argument("--pitch-um", type=float, required=True, help="the micrometer's line pitch in µm (often 10)")
    calibrate.add_argument("--use", action="store_true", help="also make it the objective in use")
    set_scale = sub.add_parser("set", help="type in the scale of an objective (µm per pixel)")
    set_scale.add_argument("name")
    set_scale.add_argument("--um-per-px", type=float, required=True)
    set_scale.add_argument("--use", action="store_true", help="also make it the objective in use")
    use = sub.add_parser("use", help="the objective now on the microscope")
    use.add_argument("name")
    remove = sub.add_parser("remove", help="forget an objective")
    remove.add_argument("name")


def run(args: argparse.Namespace) -> int:
    from station.config import load_settings, save_settings

    settings = load_settings()
    action = args.objectives_command or "list"
    if action == "list":
        return _list(settings, getattr(args, "json", False))
    if action in ("use", "remove") and args.name not in settings.objectives:
        print(f"no objective {args.name!r}; known: {', '.join(settings.objectives) or 'none'}", file=sys.stderr)
        return 1
    if action == "calibrate":
        scale = _calibrated_scale(args.image, args.pitch_um)
        if scale is None:
            return 1
        _store(settings, args.name, scale, args.use)
    elif action == "set":
        if not (math.isfinite(args.um_per_px) and args.um_per_px > 0):
            print(f"--um-per-px must be a positive number, got {args.um_per_px}", file=sys.stderr)
            return 2
        _store(settings, args.name, args.um_per_px, args.use)
    elif action == "use":
        settings.objective = args.name
    elif action == "remove":
        settings.objectives = {k: v for k, v in settings.objectives.items() if k != args.name}
        if settings.objective == args.name:
            settings.objective = ""
    save_settings(settings)
    return _list(settings, False)


def _store(settings, name: str, scale: float, use: bool) -> None:
    settings.objectives = {**settings.objectives, name: round(scale, 6)}
    if use or not settings.objective:
        settings.objective = name


def _calibrated_scale(image_path: Path, pitch_um: float) -> float | None:
    from station.capture.images import ImageReadError, read_image
    from station.capture.scale import ScaleError, measure_ruling

    if not (math.isfinite(pitch_um) and pitch_um > 0):
        print(f"--pitch-um must be a positive number, got {pitch_um}", file=sys.stderr)
        return None
    try:
        measured = measure_ruling(read_image(image_path))
    except (ImageReadError, ScaleError) as exc:
        print(f"{image_path}: {exc}", file=sys.stderr)
        return None
    scale = measured.um_per_px(pitch_um)
    print(f"{image_path}: {measured.lines} lines, pitch {measured.pitch_px:.3f} px (lines tilted "
          f"{measured.angle_deg:+.1f}°, centres within {measured.residual_px:.2f} px): {scale:.5g} µm/px")
    return scale


def _list(settings, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"objectives": settings.objectives, "in_use": settings.objective or None}, indent=2,
                         ensure_ascii=False))
        return 0
    if not settings.objectives:
        print("no objectives: `station objectives calibrate NAME IMAGE --pitch-um P` or `set NAME --um-per-px X`")
    for name, scale in settings.objectives.items():
        mark = "*" if name == settings.objective else " "
        print(f"{mark} {name}: {scale_text(scale)}")
    return 0
