"""The one interface every frame source implements.

A source is a context manager: ``with open_source("demo") as source: frame = source.read()``.
``open()`` and ``read()`` run on a capture worker thread, never on the GUI thread; they may
block briefly but always return or raise within the source's timeouts.

* ``read()`` returns a :class:`Frame`, or ``None`` only when a finite source (video file,
  image folder) is exhausted. A live source raises :class:`SourceError` when its stream is
  dead (after trying to reconnect).
* A folder source raises :class:`FrameReadError` for one unreadable file and moves on to the
  next file on the following ``read()``; the error is also appended to ``problems``.
* ``problems`` collects non-fatal issues seen so far (settings the camera did not accept,
  files that are not images, a stall that was recovered from), in the order they happened.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One image from a source.

    ``image`` is HxWx3 RGB uint8 (whatever the source delivered: BGR, 16-bit, grayscale, RGBA
    and EXIF-rotated images are converted at the source). ``timestamp`` is ``time.time()`` when
    the frame was captured; ``frame_id`` increases by at least one per frame of a source (an
    image folder uses the file's position in its sorted list, so gaps mark unreadable files).
    ``source`` names where the image came from: the file path for folder frames, otherwise the
    source's name ("demo", "camera 0", the video path, the URL).
    """

    image: np.ndarray
    timestamp: float
    frame_id: int
    source: str


class SourceError(Exception):
    """A source cannot be opened or its stream died; the message is meant for the operator."""


class FrameReadError(SourceError):
    """One frame of a finite source could not be read; the next ``read()`` moves on."""

    def __init__(self, message: str, *, path: Path | None = None, frame_id: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.frame_id = frame_id


class FrameSource(ABC):
    """Base class of all frame sources (see the module docstring for the contract)."""

    #: True for cameras, streams and the simulated microscope: frames keep coming, stale ones
    #: are dropped. False for video files and image folders, which end and never skip a frame.
    is_live: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        #: frames per second the source delivers (the file's rate, the camera's read-back rate);
        #: None where there is no natural rate (an image folder).
        self.nominal_fps: float | None = None
        self.problems: list[str] = []
        self._is_open = False

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    def open(self) -> None:
        """Start the source; raises :class:`SourceError` with the reason when it cannot."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame (see the module docstring for what ``None`` and errors mean)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call twice or on a source that never opened."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the status bar, e.g. "Camera 0 1280x960 @ 30.0 fps (requested 1920x1080 @ 60)"."""

    @property
    def is_open(self) -> bool:
        return self._is_open

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}{' open' if self._is_open else ''}>"

    # -- helpers for subclasses ------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._is_open:
            raise SourceError(f"{self.name}: read() before open()")

    def _report(self, problem: str) -> None:
        """Record a non-fatal problem (and log it once)."""
        self.problems.append(problem)
        log.warning("%s: %s", self.name, problem)


class Pacer:
    """Sleeps so that successive ``wait()`` calls return at ``fps`` on average.

    A consumer that falls behind by more than one frame period is not made to catch up with
    a burst of frames: the schedule restarts from now (live view wants the latest frame, not
    a fast-forward).
    """

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.period = 1.0 / fps
        self._next: float | None = None

    def reset(self) -> None:
        self._next = None

    def wait(self) -> None:
        now = time.monotonic()
        if self._next is None or now - self._next > self.period:
            self._next = now + self.period
            return
        if self._next > now:
            time.sleep(self._next - now)
        self._next += self.period
