"""``station cameras``: the cameras attached now, each with the spec ``--source`` takes
(``station.capture.discovery``, which the GUI's camera picker lists too)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from station.capture.discovery import discover_cameras


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--probe", type=int, default=4, metavar="N",
                        help="where there are no V4L2 device names: try OpenCV camera indices 0..N-1 (default 4)")


def run(args: argparse.Namespace) -> int:
    listing = discover_cameras(args.probe)
    opencv, genicam, genicam_unavailable = listing.opencv, listing.genicam, listing.genicam_unavailable
    if args.json:
        printed = {"opencv": [asdict(d) for d in opencv], "genicam": [d.to_dict() for d in genicam],
                   "genicam_unavailable": genicam_unavailable}
        print(json.dumps(printed, indent=2, ensure_ascii=False))
        return 0
    print("OpenCV cameras" + (" (V4L2):" if sys.platform.startswith("linux") else ":"))
    for device in opencv:
        node = f"  ({device.node})" if device.node != device.spec else ""
        print(f"  {device.name}\n      --source {device.spec}{node}")
    if not opencv:
        print("  none found")
    print("GenICam cameras (Aravis):")
    for device in genicam:
        where = f" at {device.address}" if device.address else ""
        print(f"  {device.vendor} {device.model}, serial {device.serial or '?'}, {device.protocol}{where}\n"
              f"      --source {device.spec}")
    if genicam_unavailable:
        print(f"  not available: {genicam_unavailable}")
    elif not genicam:
        print("  none found (GigE Vision cameras must be on this computer's subnet)")
    return 0
