"""A camera or network stream through OpenCV.

Requested resolution, frame rate and exposure are set, read back and reported: ``describe()``
shows what the device actually delivers next to what was asked, and a mismatch is recorded
in ``problems``. A dead or frozen stream (no new frame, or identical frames, for
``stall_timeout_s``) is reported and reopened, with backoff until the device is back
(``read()`` raises :class:`~station.capture.base.SourceReconnecting` meanwhile).

Backends (``backend``, the ``camera.backend`` setting): "auto" is DirectShow on Windows (MSMF,
OpenCV's own default there, can take seconds to open and converts frames in hardware), V4L2 on
Linux and OpenCV's choice elsewhere; "dshow", "msmf", "v4l2", "avfoundation" or "any" choose
one. MSMF runs with its hardware transforms off (``OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS=0``,
read once per process; an explicit value in the environment wins).

Exposure units are the backend's (docs/CAMERAS.md): V4L2 in 100 µs steps
(``exposure_time_absolute``), DirectShow and MSMF in log2 seconds (-5 is 1/32 s, 0 is 1 s).

Timeouts: network streams go through FFmpeg with its open/read timeouts; local V4L2 cameras
through OpenCV's select() timeout, set by ``OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT`` (OpenCV has
no per-capture read timeout for V4L2 and reads the variable once per process, so the first
camera opened decides it; an explicit value in the environment wins). Worst case, ``read()``
returns or raises within about ``stall_timeout_s + open_timeout_s`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from station.capture.base import Backoff, CameraInfo, Frame, ReconnectingSource, SourceError, describe_mode
from station.capture.images import opencv_to_rgb_uint8

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class VideoCaptureLike(Protocol):
    """The part of ``cv2.VideoCapture`` the camera source uses (tests pass a scripted one)."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def set(self, prop: int, value: float) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


# (device, open_timeout_s, read_timeout_s) -> an opened (or failed) capture
CaptureFactory = Callable[[int | str, float, float], VideoCaptureLike]


@dataclass(frozen=True)
class CaptureMode:
    """Resolution, frame rate and exposure, as requested or as read back from the device."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    exposure: float | None = None

    def text(self) -> str:
        """E.g. "1280x960 @ 30 fps"; empty when nothing is set."""
        parts = []
        if self.width and self.height:
            parts.append(f"{self.width}x{self.height}")
        if self.fps:
            parts.append(f"@ {self.fps:g} fps")
        if self.exposure is not None:
            parts.append(f"exposure {self.exposure:g}")
        return " ".join(parts)


def is_stream_url(spec: str) -> bool:
    return spec.strip().lower().startswith(STREAM_SCHEMES)


def is_device_path(spec: str) -> bool:
    """A V4L2 device node, preferably its stable name (``/dev/v4l/by-id/...``, ``/dev/v4l/by-path/...``)."""
    return spec.strip().startswith("/dev/")


def redact_url(url: str) -> str:
    """The URL without its password (it ends up in the status bar and the log)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


#: the ``backend`` setting's values -> OpenCV's API preference ("auto" is resolved by platform)
CAMERA_BACKENDS = {
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "v4l2": cv2.CAP_V4L2,
    "avfoundation": cv2.CAP_AVFOUNDATION,
    "any": cv2.CAP_ANY,
}
BACKEND_NAMES = {"dshow": "DirectShow", "msmf": "Media Foundation", "v4l2": "V4L2", "avfoundation": "AVFoundation",
                 "any": "OpenCV's default backend", "ffmpeg": "FFmpeg"}
EXPOSURE_UNITS = {"v4l2": "100 µs steps (V4L2)", "dshow": "log2 s", "msmf": "log2 s"}
#: backends whose exposure is log2 seconds (and which have no auto-exposure switch of their own)
LOG2_EXPOSURE_BACKENDS = ("dshow", "msmf")


def resolve_backend(backend: str, platform: str | None = None) -> str:
    """``backend`` as one of CAMERA_BACKENDS' names; "auto" by platform (DirectShow on Windows)."""
    name = backend.strip().lower().replace(" ", "") or "auto"
    name = {"directshow": "dshow", "mediafoundation": "msmf", "v4l": "v4l2"}.get(name, name)
    if name == "auto":
        platform = platform or sys.platform
        return "dshow" if platform == "win32" else "v4l2" if platform.startswith("linux") else "any"
    if name not in CAMERA_BACKENDS:
        raise ValueError(f"unknown camera backend {backend!r} (the camera.backend setting): "
                         f"one of auto, {', '.join(CAMERA_BACKENDS)}")
    return name


def open_opencv_capture(device: int | str, open_timeout_s: float, read_timeout_s: float,
                        backend: str = "auto") -> cv2.VideoCapture:
    if isinstance(device, str) and is_device_path(device):
        os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(max(1, math.ceil(read_timeout_s))))
        return cv2.VideoCapture(device, cv2.CAP_V4L2)
    if isinstance(device, str):
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(device, cv2.CAP_FFMPEG, params)
    name = resolve_backend(backend)
    if name == "v4l2":
        os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(max(1, math.ceil(read_timeout_s))))
    if name == "msmf":
        os.environ.setdefault("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", "0")
    return cv2.VideoCapture(device, CAMERA_BACKENDS[name])


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV prints a WARN line per backend it tries; our SourceError says it better."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


class CameraSource(ReconnectingSource):
    """A camera by device index (``0``) or V4L2 device path (``/dev/v4l/by-id/...``), or a stream by URL."""

    def __init__(
        self,
        device: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        exposure: float | None = None,
        backend: str = "auto",
        stall_timeout_s: float = 3.0,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
        detect_identical_frames: bool = True,
        capture_factory: CaptureFactory | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if isinstance(device, str) and not (is_stream_url(device) or is_device_path(device)):
            raise ValueError(f"not a camera index, device path or stream URL: {device!r}")
        if isinstance(device, int) and device < 0:
            raise ValueError(f"camera index must be >= 0, got {device}")
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s}")
        self.backend = resolve_backend(backend) if not isinstance(device, str) else "ffmpeg" if is_stream_url(device) else "v4l2"
        label = f"camera {device}" if isinstance(device, int) or is_device_path(device) else redact_url(device)
        super().__init__(label, backoff=backoff)
        self.device = device
        self.requested = CaptureMode(width, height, fps, exposure)
        self.actual: CaptureMode | None = None
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.detect_identical_frames = detect_identical_frames
        self._factory = capture_factory or partial(open_opencv_capture, backend=self.backend)
        self._capture: VideoCaptureLike | None = None
        self._last_signature: np.ndarray | None = None
        self._last_change = 0.0
        self._next_id = 0
        self.camera_info: CameraInfo | None = None  # set once open: on every frame, for the record

    # -- FrameSource -----------------------------------------------------------------------

    def open(self) -> None:
        if self._is_open:
            return
        first = self._connect()
        assert self._capture is not None
        self.actual = self._read_back(self._capture, first)
        self.camera_info = self._camera_info()
        self._report_mismatch()
        self.nominal_fps = self.actual.fps or self.requested.fps
        self._pending = first
        self._is_open = True
        self.state = "live"
        log.info("opened %s", self.describe())

    def read(self) -> Frame | None:
        frame = self._pending_or_reconnect()
        if frame is not None:
            return frame
        assert self._capture is not None
        while True:
            ok, image = self._capture.read()
            now = time.monotonic()
            if ok and image is not None and image.size:
                if not self._is_repeat(image):
                    self._last_change = now
                    return self._frame(image)
                if now - self._last_change <= self.stall_timeout_s:
                    return self._frame(image)
                return self._lost(f"the picture has not changed for {self.stall_timeout_s:g} s (frozen stream)")
            if now - self._last_change > self.stall_timeout_s:
                return self._lost(f"no new frame for {self.stall_timeout_s:g} s")
            time.sleep(0.005)

    def close(self) -> None:
        self._disconnect()
        self._pending = None
        self._is_open = False
        self.state = "closed"

    def describe(self) -> str:
        return describe_mode(self._title(), self.actual, self.requested, BACKEND_NAMES[self.backend])

    # -- internals -------------------------------------------------------------------------

    def _disconnect(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _frame_from(self, raw: object) -> Frame:
        assert isinstance(raw, np.ndarray)
        return self._frame(raw)

    def _connect(self) -> np.ndarray:
        """Open the device, apply the requested mode, read one frame; raise SourceError if any fails."""
        started = time.monotonic()
        with _quiet_opencv():
            capture = self._factory(self.device, self.open_timeout_s, self.read_timeout_s)
        if not capture.isOpened():
            capture.release()
            raise SourceError(self._cannot_open_message())
        opened = time.monotonic()
        log.debug("%s opened in %.2f s", self._title(), opened - started)
        self._apply_requested(capture)
        # The first frame's deadline starts once the device is open: MSMF alone can take seconds to open.
        deadline = opened + self.open_timeout_s + self.read_timeout_s
        while True:
            ok, image = capture.read()
            if ok and image is not None and image.size:
                self._capture = capture
                self._last_signature = None
                self._last_change = time.monotonic()
                return image
            if time.monotonic() > deadline:
                capture.release()
                raise SourceError(
                    f"{self._title()} opened but delivered no frame within "
                    f"{self.open_timeout_s + self.read_timeout_s:g} s (is another program using it?)"
                )
            time.sleep(0.02)

    def _title(self) -> str:
        if isinstance(self.device, int) or is_device_path(self.device):
            return f"Camera {self.device}"
        return f"Stream {self.name}"

    def _cannot_open_message(self) -> str:
        if isinstance(self.device, int):
            return (
                f"No camera at index {self.device} (OpenCV could not open it): check that it is plugged in, "
                "that no other program is using it, and try another index"
            )
        if is_device_path(self.device):
            return (
                f"No camera at {self.device} (OpenCV could not open it): check that it is plugged in and that "
                "no other program is using it; `station cameras` lists the attached ones"
            )
        return (
            f"Cannot open stream {self.name} within {self.open_timeout_s:g} s: "
            "check the address, the network and the credentials"
        )

    def _apply_requested(self, capture: VideoCaptureLike) -> None:
        requested = self.requested
        with contextlib.suppress(cv2.error):
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the latest frame, not a queue of stale ones
            if requested.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, float(requested.width))
            if requested.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, float(requested.height))
            if requested.fps:
                capture.set(cv2.CAP_PROP_FPS, float(requested.fps))
            if requested.exposure is not None:
                # V4L2 switches to manual with AUTO_EXPOSURE 1 (auto = 3); DirectShow and MSMF have no
                # such switch in OpenCV: setting EXPOSURE itself turns their auto exposure off.
                if self.backend not in LOG2_EXPOSURE_BACKENDS:
                    capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)
                capture.set(cv2.CAP_PROP_EXPOSURE, float(requested.exposure))

    def _read_back(self, capture: VideoCaptureLike, first: np.ndarray) -> CaptureMode:
        # The frame itself is the truth about resolution; some backends report 0 or stale sizes.
        height, width = first.shape[:2]
        fps = _positive(capture.get(cv2.CAP_PROP_FPS))
        exposure = capture.get(cv2.CAP_PROP_EXPOSURE) if self.requested.exposure is not None else None
        return CaptureMode(width, height, fps, exposure)

    def _report_mismatch(self) -> None:
        requested, actual = self.requested, self.actual
        assert actual is not None
        label = self._title()
        if requested.exposure is not None and self.backend in LOG2_EXPOSURE_BACKENDS and not -13 <= requested.exposure <= 0:
            self._report(
                f"{label}: exposure {requested.exposure:g} is outside {BACKEND_NAMES[self.backend]}'s range: it counts "
                f"log2 seconds, -13 (1/8192 s) to 0 (1 s); e.g. -6 is 1/64 s (docs/CAMERAS.md)"
            )
        if (requested.width and requested.width != actual.width) or (
            requested.height and requested.height != actual.height
        ):
            self._report(
                f"{label} delivers {actual.width}x{actual.height} instead of the requested "
                f"{requested.width or actual.width}x{requested.height or actual.height}"
            )
        if requested.fps and actual.fps and abs(requested.fps - actual.fps) > 0.5:
            self._report(f"{label} runs at {actual.fps:g} fps instead of the requested {requested.fps:g}")
        if requested.fps and not actual.fps:
            self._report(f"{label} does not report its frame rate (requested {requested.fps:g} fps)")
        if requested.exposure is not None and (
            actual.exposure is None or abs(actual.exposure - requested.exposure) > 1e-6
        ):
            self._report(f"{label} exposure reads back as {actual.exposure} instead of {requested.exposure:g}")

    def _is_repeat(self, image: np.ndarray) -> bool:
        if not self.detect_identical_frames:
            return False
        signature = np.ascontiguousarray(image[::8, ::8])
        repeat = self._last_signature is not None and np.array_equal(signature, self._last_signature)
        self._last_signature = signature
        return repeat

    def _camera_info(self) -> CameraInfo:
        spec = str(self.device) if not is_stream_url(str(self.device)) else redact_url(str(self.device))
        model = _v4l2_card_name(self.device) if isinstance(self.device, str) and is_device_path(self.device) else ""
        exposure = self.actual.exposure if self.actual is not None else None
        unit = EXPOSURE_UNITS.get(self.backend, f"{BACKEND_NAMES[self.backend]} units") if exposure is not None else ""
        return CameraInfo(spec=spec, model=model, exposure=exposure, exposure_unit=unit)

    def _frame(self, bgr: np.ndarray) -> Frame:
        frame = Frame(image=opencv_to_rgb_uint8(bgr), timestamp=time.time(), frame_id=self._next_id, source=self.name,
                      camera=self.camera_info)
        self._next_id += 1
        return frame


def _v4l2_card_name(device: str, sysfs: Path = Path("/sys/class/video4linux")) -> str:
    """The V4L2 driver's name of the camera at ``device`` ("HD Pro Webcam C920"); "" where unknown."""
    try:
        return (sysfs / Path(os.path.realpath(device)).name / "name").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _positive(value: float) -> float | None:
    return float(value) if value and math.isfinite(value) and value > 0 else None
