"""A video file, played at the file's own frame rate (or as fast as it decodes)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np

from station.capture.base import Frame, FrameSource, Pacer, SourceError
from station.capture.images import opencv_to_rgb_uint8

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg", ".webm", ".mjpeg")

# A file claiming no rate, or an absurd one, plays at this rate (and says so in `problems`).
FALLBACK_FPS = 25.0


class VideoFileSource(FrameSource):
    """Frames of a video file; ``read()`` returns None at the end (or loops with ``loop=True``).

    ``paced=True`` (the default) delivers frames at the file's frame rate, as a live view wants;
    ``paced=False`` returns them as fast as they decode (batch processing). No frame is skipped.
    """

    is_live = False

    def __init__(self, path: Path | str, *, paced: bool = True, loop: bool = False) -> None:
        self.path = Path(path)
        super().__init__(str(self.path))
        self.paced = paced
        self.loop = loop
        self.frame_count: int | None = None
        self.size: tuple[int, int] | None = None  # (width, height)
        self._capture: cv2.VideoCapture | None = None
        self._pacer: Pacer | None = None
        self._pending: np.ndarray | None = None
        self._frames_read = 0  # in the current pass through the file
        self._next_id = 0

    def open(self) -> None:
        if self._is_open:
            return
        if not self.path.exists():
            raise SourceError(f"Cannot read video '{self.path}': no such file")
        if not self.path.is_file():
            raise SourceError(f"Cannot read video '{self.path}': not a file")
        if self.path.stat().st_size == 0:
            raise SourceError(f"Cannot read video '{self.path}': the file is empty (0 bytes)")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            capture = cv2.VideoCapture(str(self.path), cv2.CAP_ANY)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"Cannot read video '{self.path}': not a video, or encoded with a codec this build cannot decode"
            )
        ok, first = capture.read()
        if not ok or first is None or not first.size:
            capture.release()
            raise SourceError(f"Cannot read video '{self.path}': it opens but no frame decodes (corrupt or empty)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and 0 < fps <= 1000):
            self._report(
                f"'{self.path.name}' does not state a usable frame rate ({fps}); playing at {FALLBACK_FPS:g} fps"
            )
            fps = FALLBACK_FPS
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self.nominal_fps = float(fps)
        self.size = (first.shape[1], first.shape[0])
        self._capture = capture
        self._pending = first
        self._frames_read = 0
        self._pacer = Pacer(fps) if self.paced else None
        self._is_open = True
        log.info("opened %s", self.describe())

    def read(self) -> Frame | None:
        self._require_open()
        assert self._capture is not None
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._capture.read()
            if not ok or image is None or not image.size:
                self._note_early_end()
                if not self.loop or self._frames_read == 0:
                    return None
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._frames_read = 0
                ok, image = self._capture.read()
                if not ok or image is None:
                    raise SourceError(f"Cannot read video '{self.path}': rewinding to the start failed")
        if self._pacer is not None:
            self._pacer.wait()
        self._frames_read += 1
        frame = Frame(image=opencv_to_rgb_uint8(image), timestamp=time.time(), frame_id=self._next_id, source=self.name)
        self._next_id += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._pending = None
        self._is_open = False

    def describe(self) -> str:
        if self.size is None:
            return f"Video {self.path.name} (not open)"
        frames = f", {self.frame_count} frames" if self.frame_count else ""
        return f"Video {self.path.name} {self.size[0]}x{self.size[1]} @ {self.nominal_fps:g} fps{frames}"

    def _note_early_end(self) -> None:
        # Container frame counts are estimates; only a clear shortfall means a damaged file.
        if self.frame_count and self._frames_read < self.frame_count * 0.95 - 1:
            problem = f"'{self.path.name}' ended after {self._frames_read} of {self.frame_count} frames (truncated?)"
            if problem not in self.problems:
                self._report(problem)
