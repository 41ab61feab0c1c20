"""``station cameras``: the cameras attached now, each with the spec ``--source`` takes.

V4L2 cameras (Linux) are listed by their stable ``/dev/v4l/by-id/...`` name where udev made one
(it survives replugging and a changed USB order; ``/dev/videoN`` does not); elsewhere OpenCV is
asked for the first few indices. GenICam cameras come from Aravis's discovery, by device id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from station.capture.genicam import GenICamDevice, GenICamUnavailable, list_genicam_devices

V4L2_SYSFS = Path("/sys/class/video4linux")
DEV = Path("/dev")


@dataclass(frozen=True)
class OpenCVDevice:
    """A camera OpenCV opens: ``spec`` is what ``--source`` takes; ``node`` the device it is now."""

    spec: str
    name: str
    node: str


def list_v4l2_devices(sysfs: Path = V4L2_SYSFS, dev: Path = DEV) -> list[OpenCVDevice]:
    """The V4L2 capture nodes (a UVC camera's metadata node, index 1, is left out)."""
    stable = _stable_names(dev)
    devices = []
    for entry in sorted(sysfs.glob("video*"), key=lambda p: (len(p.name), p.name)):
        if _read(entry / "index", "0") != "0":
            continue
        node = str(dev / entry.name)
        devices.append(OpenCVDevice(spec=stable.get(node, node), name=_read(entry / "name", entry.name), node=node))
    return devices


def probe_opencv_indices(count: int = 4) -> list[OpenCVDevice]:
    """Indices 0..count-1 that OpenCV opens (Windows and macOS, which have no stable device names)."""
    from station.capture.camera import _quiet_opencv, open_opencv_capture

    devices = []
    for index in range(count):
        with _quiet_opencv():
            capture = open_opencv_capture(index, 5.0, 2.0)
        try:
            if capture.isOpened():
                devices.append(OpenCVDevice(spec=str(index), name=f"camera {index} (an index: the order can change)",
                                            node=str(index)))
        finally:
            capture.release()
    return devices


def _stable_names(dev: Path) -> dict[str, str]:
    """``/dev/videoN`` -> its ``/dev/v4l/by-id`` name (else ``by-path``)."""
    names: dict[str, str] = {}
    for folder in ("by-path", "by-id"):  # by-id last: it wins
        for link in sorted((dev / "v4l" / folder).glob("*")):
            target = Path(os.path.normpath(link.parent / os.readlink(link))) if link.is_symlink() else None
            if target is not None:
                names[str(dev / target.name)] = str(link)
    return names


def _read(path: Path, default: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or default
    except OSError:
        return default


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--probe", type=int, default=4, metavar="N",
                        help="where there are no V4L2 device names: try OpenCV camera indices 0..N-1 (default 4)")


def run(args: argparse.Namespace) -> int:
    opencv = list_v4l2_devices() if sys.platform.startswith("linux") else probe_opencv_indices(args.probe)
    genicam: list[GenICamDevice] = []
    genicam_unavailable = None
    try:
        genicam = list_genicam_devices()
    except GenICamUnavailable as exc:
        genicam_unavailable = str(exc)
    if args.json:
        listing = {"opencv": [asdict(d) for d in opencv], "genicam": [d.to_dict() for d in genicam],
                   "genicam_unavailable": genicam_unavailable}
        print(json.dumps(listing, indent=2, ensure_ascii=False))
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
