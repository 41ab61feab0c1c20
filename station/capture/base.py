"""The one interface every frame source implements.

A source is a context manager: ``with open_source("demo") as source: frame = source.read()``.
``open()`` and ``read()`` run on a capture worker thread, never on the GUI thread; they may
block briefly but always return or raise within the source's timeouts.

* ``read()`` returns a :class:`Frame`, or ``None`` only when a finite source (video file,
  image folder) is exhausted. A live source raises :class:`SourceError` when its stream is
  dead (after trying to reconnect).
* A live source that lost its device (unplugged, powered off, a dead stream) raises
  :class:`SourceReconnecting` from ``read()`` while it tries to get it back, with backoff
  (:class:`Backoff`); the caller waits ``retry_in_s`` (interruptibly) and calls ``read()``
  again, which tries once more when due. ``state`` says "live", "reconnecting" or "closed".
* A folder source raises :class:`FrameReadError` for one unreadable file and moves on to the
  next file on the following ``read()``; the error is also appended to ``problems``.
* ``problems`` collects non-fatal issues seen so far (settings the camera did not accept,
  files that are not images, a stall that was recovered from), in the order they happened.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraInfo:
    """Which camera took a frame and how it was set, as read back from the device (the audit
    record keeps it with each capture). ``spec`` is what ``--source`` takes; ``exposure`` is in
    ``exposure_unit`` (the backend's: "µs" for GenICam, V4L2's 100 µs steps, DirectShow's log2 s)."""

    spec: str
    model: str = ""
    serial: str = ""
    exposure: float | None = None
    exposure_unit: str = ""
    gain: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraInfo:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True)
class Frame:
    """One image from a source.

    ``image`` is HxWx3 RGB uint8 (whatever the source delivered: BGR, 16-bit, grayscale, RGBA
    and EXIF-rotated images are converted at the source). ``timestamp`` is ``time.time()`` when
    the frame was captured; ``frame_id`` increases by at least one per frame of a source (an
    image folder uses the file's position in its sorted list, so gaps mark unreadable files).
    ``source`` names where the image came from: the file path for folder frames, otherwise the
    source's name ("demo", "camera 0", the video path, the URL). ``camera`` is the live
    camera's identity and settings (None for files and streams of unknown origin).
    """

    image: np.ndarray
    timestamp: float
    frame_id: int
    source: str
    camera: CameraInfo | None = None


class SourceError(Exception):
    """A source cannot be opened or its stream died; the message is meant for the operator."""


class SourceReconnecting(SourceError):
    """A live source lost its device and is trying to get it back: call ``read()`` again after ``retry_in_s``."""

    def __init__(self, message: str, *, retry_in_s: float) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


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
        #: "live" while frames come, "reconnecting" after the device was lost, "closed" otherwise
        self.state = "closed"
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


class Backoff:
    """Delays between reconnection attempts: ``first_s``, doubling, at most ``max_s``.

    The cap bounds the recovery time: a camera that comes back is found within ``max_s``
    plus one open attempt.
    """

    def __init__(self, first_s: float = 0.25, max_s: float = 2.0) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"need 0 < first_s <= max_s, got {first_s}, {max_s}")
        self.first_s, self.max_s = first_s, max_s
        self._next_s = first_s

    def reset(self) -> None:
        self._next_s = self.first_s

    def next_delay(self) -> float:
        delay, self._next_s = self._next_s, min(self._next_s * 2, self.max_s)
        return delay


def describe_mode(title: str, actual, requested, via: str) -> str:
    """"Camera 0 640x480 @ 15 fps via V4L2 (requested 1280x960 @ 30 fps)": what a camera delivers,
    through what, next to what was asked (``actual``/``requested``: modes with ``text()``)."""
    if actual is None:
        return f"{title} (not open)"
    text = f"{title} {actual.text()} via {via}"
    asked = requested.text()
    return f"{text} (requested {asked})" if asked else text


class ReconnectingSource(FrameSource):
    """A live source that gets its device back after losing it (see the module docstring).

    Subclasses implement ``_connect()`` (open the device and return the first frame, or raise
    :class:`SourceError`), ``_disconnect()`` and ``_frame_from(raw)``; they call ``_lost(reason)``
    from ``read()`` when the stream died, and start ``read()`` with ``_pending_or_reconnect()``.
    """

    is_live = True

    def __init__(self, name: str, *, backoff: Backoff | None = None) -> None:
        super().__init__(name)
        self.reconnects = 0
        self.backoff = backoff or Backoff()
        self._pending: object | None = None  # the first frame after (re)connecting, delivered by read()
        self._lost_reason = ""
        self._lost_at = 0.0
        self._next_attempt = 0.0
        self._attempts = 0

    @abstractmethod
    def _connect(self) -> object:
        """Open the device, apply the settings, return the first raw frame; raise SourceError if any fails."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Release the device (safe when it is already gone)."""

    @abstractmethod
    def _frame_from(self, raw: object) -> Frame:
        """A delivered frame from what ``_connect``/the stream returned."""

    def _title(self) -> str:
        return self.name

    def _pending_or_reconnect(self) -> Frame | None:
        """The frame that opening read, or, while reconnecting, a frame from the device that came back."""
        self._require_open()
        if self.state == "reconnecting":
            return self._try_reconnect()
        if self._pending is not None:
            raw, self._pending = self._pending, None
            return self._frame_from(raw)
        return None

    def _lost(self, reason: str) -> Frame:
        """The stream died: report it, release the device, try to get it back now (and later, with backoff)."""
        self._report(f"{self._title()}: {reason}; reconnecting")
        self._disconnect()
        self.state = "reconnecting"
        self._lost_reason = reason
        self._lost_at = time.monotonic()
        self._next_attempt = self._lost_at
        self._attempts = 0
        self.backoff.reset()
        return self._try_reconnect()

    def _try_reconnect(self) -> Frame:
        now = time.monotonic()
        if now < self._next_attempt:
            raise SourceReconnecting(self._reconnecting_message(), retry_in_s=self._next_attempt - now)
        self._attempts += 1
        try:
            raw = self._connect()
        except SourceError as exc:
            delay = self.backoff.next_delay()
            self._next_attempt = time.monotonic() + delay
            raise SourceReconnecting(f"{self._reconnecting_message()} (last try: {exc})", retry_in_s=delay) from exc
        self.reconnects += 1
        self.state = "live"
        self._report(
            f"{self._title()} is back after {time.monotonic() - self._lost_at:.1f} s "
            f"({self._attempts} attempt{'s' if self._attempts != 1 else ''})"
        )
        return self._frame_from(raw)

    def _reconnecting_message(self) -> str:
        waited = time.monotonic() - self._lost_at
        return f"{self._title()} lost ({self._lost_reason}): reconnecting for {waited:.0f} s, attempt {self._attempts}"


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
