"""Every thread of the GUI lives here.

Each worker is a QObject moved to its own QThread. The GUI thread talks to it through
queued signals or thread-safe setters and never waits on it: results come back as
signals. Live frames use a latest-only mailbox, so a slow GUI drops stale frames instead
of queueing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QThread, Signal, Slot

from station.capture.base import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")


class LatestMailbox(Generic[T]):
    """Holds only the newest item; ``put`` reports whether the reader needs waking."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: T | None = None
        self._dropped = 0

    def put(self, item: T) -> bool:
        with self._lock:
            was_empty = self._item is None
            if not was_empty:
                self._dropped += 1
            self._item = item
            return was_empty

    def take(self) -> T | None:
        with self._lock:
            item, self._item = self._item, None
            return item

    @property
    def dropped(self) -> int:
        return self._dropped


class FpsMeter:
    def __init__(self, window_s: float = 2.0) -> None:
        self._times: deque[float] = deque()
        self._window_s = window_s

    def tick(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


class CaptureWorker(QObject):
    """Reads a frame source in its own thread until stopped.

    ``open_source`` builds the source from a spec string (see station.capture.sources)
    inside the worker thread, so a slow camera open never blocks the window.
    """

    frame_available = Signal()  # a frame waits in ``mailbox``
    source_opened = Signal(str)  # description of the opened source
    source_problem = Signal(str)  # non-fatal: an unreadable file in a folder, a reconnect
    source_error = Signal(str)  # fatal for this source: it has been closed
    source_finished = Signal()  # a finite source ran out, or it was stopped
    fps_measured = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.mailbox: LatestMailbox[Frame] = LatestMailbox()
        self._stop = threading.Event()
        self._paused = threading.Event()

    # called from the GUI thread; thread-safe
    def request_stop(self) -> None:
        self._stop.set()
        self._paused.clear()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @Slot(str)
    def run_source(self, spec: str) -> None:
        from station.capture.sources import open_source

        self._stop.clear()
        self._paused.clear()
        try:
            source = open_source(spec)
            source.open()
        except (SourceError, OSError, ValueError) as exc:
            log.warning("cannot open source %r: %s", spec, exc)
            self.source_error.emit(str(exc))
            self.source_finished.emit()
            return
        try:
            self.source_opened.emit(source.describe())
            self._read_loop(source)
        finally:
            source.close()
            self.source_finished.emit()

    def _read_loop(self, source: FrameSource) -> None:
        meter = FpsMeter()
        last_report = 0.0
        reported_problems = 0
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(0.05)
                continue
            try:
                frame = source.read()
            except SourceError as exc:
                if source.is_live:
                    log.warning("source %s failed: %s", source.describe(), exc)
                    self.source_error.emit(str(exc))
                    return
                # a finite source (folder) reports an unreadable item and goes on
                self.source_problem.emit(str(exc))
                continue
            for problem in source.problems[reported_problems:]:
                self.source_problem.emit(problem)
            reported_problems = len(source.problems)
            if frame is None:
                return
            if self.mailbox.put(frame):
                self.frame_available.emit()
            fps = meter.tick()
            now = time.monotonic()
            if now - last_report > 0.5:
                self.fps_measured.emit(fps)
                last_report = now


class InferenceWorker(QObject):
    """Runs the inference engine in its own thread, always on the latest request.

    ``submit`` may be called any time from the GUI thread: a request that is still waiting
    when a newer one arrives is dropped (counted in ``mailbox.dropped``). ``cancel`` drops
    the result of a request already running. Errors come back as ``request_failed`` and
    the worker stays alive.
    """

    recipe_loaded = Signal(str, str)  # recipe name, compute device description
    recipe_failed = Signal(str, str)  # recipe name, message
    result_ready = Signal(object)  # station.inference.InspectionResult
    request_failed = Signal(int, str)  # request id, message
    busy_changed = Signal(bool)
    _wake = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.mailbox: LatestMailbox = LatestMailbox()
        self._engine = None
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._wake.connect(self._serve)

    # -- GUI thread ---------------------------------------------------------------
    def submit(self, request) -> None:
        with self._lock:
            self._cancelled.discard(request.request_id)
        if self.mailbox.put(request):
            self._wake.emit()

    def cancel(self, request_id: int) -> None:
        with self._lock:
            self._cancelled.add(request_id)

    def request_stop(self) -> None:
        self.mailbox.take()

    # -- worker thread ------------------------------------------------------------
    @Slot(object, str)
    def load_recipe(self, recipe, device: str) -> None:
        from station.inference import Engine

        self.busy_changed.emit(True)
        try:
            engine = Engine(recipe, device=device)
        except Exception as exc:  # noqa: BLE001 — any load failure is reported, the old engine stays
            log.warning("cannot load recipe %s: %s", recipe.name, exc)
            self.recipe_failed.emit(recipe.name, str(exc))
        else:
            if self._engine is not None:
                self._engine.close()
            self._engine = engine
            self.recipe_loaded.emit(recipe.name, engine.device_description)
        finally:
            self.busy_changed.emit(False)

    @Slot()
    def _serve(self) -> None:
        request = self.mailbox.take()
        if request is None:
            return
        if self._engine is None:
            self.request_failed.emit(request.request_id, "No recipe is loaded yet.")
            return
        self.busy_changed.emit(True)
        try:
            result = self._engine.run(request)
        except Exception as exc:  # noqa: BLE001 — a bad frame must not kill the worker
            log.exception("inference failed for request %s", request.request_id)
            self.request_failed.emit(request.request_id, f"Inference failed: {exc}")
        else:
            with self._lock:
                cancelled = request.request_id in self._cancelled
                self._cancelled.discard(request.request_id)
            if not cancelled:
                self.result_ready.emit(result)
        finally:
            self.busy_changed.emit(False)


class WorkerThread:
    """Owns a worker and the QThread it lives on; ``stop`` ends both without blocking the GUI."""

    def __init__(self, worker: QObject, name: str) -> None:
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.start()

    def stop(self, timeout_ms: int = 3000) -> bool:
        """Ask the thread to finish; at application exit the caller may wait this once."""
        request_stop = getattr(self.worker, "request_stop", None)
        if request_stop is not None:
            request_stop()
        self.thread.quit()
        return self.thread.wait(timeout_ms)
