"""Which cameras are attached now, each with the spec ``--source`` (and the GUI's picker) takes.

V4L2 cameras (Linux) are listed by their stable ``/dev/v4l/by-id/...`` name where udev made one
(it survives replugging and a changed USB order; ``/dev/videoN`` does not); elsewhere OpenCV is
asked for the first few indices. GenICam cameras come from Aravis's discovery, by device id.
:func:`discover_cameras` is what ``station cameras`` prints and the GUI's picker lists; it takes
a second or more (GigE Vision discovery), so the GUI calls it on a worker thread.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class CameraChoice:
    """One attached camera as a picker shows it: ``label`` for people, ``spec`` to open it."""

    spec: str
    label: str
    detail: str = ""  # where it is now (/dev/video0, an IP address)


@dataclass(frozen=True)
class CameraListing:
    opencv: list[OpenCVDevice] = field(default_factory=list)
    genicam: list[GenICamDevice] = field(default_factory=list)
    genicam_unavailable: str | None = None  # why GenICam cameras cannot be listed (None: they can)

    def choices(self) -> list[CameraChoice]:
        choices = [CameraChoice(d.spec, d.name, d.node if d.node != d.spec else "") for d in self.opencv]
        for device in self.genicam:
            serial = f", serial {device.serial}" if device.serial else ""
            choices.append(CameraChoice(device.spec, f"{device.vendor} {device.model}{serial}".strip(),
                                        f"{device.protocol} at {device.address}" if device.address else device.protocol))
        return choices


def discover_cameras(probe: int = 4) -> CameraListing:
    """The cameras attached now: V4L2 devices on Linux (else OpenCV indices 0..probe-1) and GenICam cameras."""
    opencv = list_v4l2_devices() if sys.platform.startswith("linux") else probe_opencv_indices(probe)
    try:
        return CameraListing(opencv, list_genicam_devices())
    except GenICamUnavailable as exc:
        return CameraListing(opencv, [], str(exc))
