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
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from station.capture.base import Frame, FrameSource, SourceError, SourceReconnecting
from station.config import CameraSettings

if TYPE_CHECKING:
    from station.audit import AuditLog, AuditSetup

log = logging.getLogger(__name__)


def open_audit_log(audit: AuditSetup | None) -> AuditLog:
    """The log ``audit`` names (``station.app`` decides it once); without one, the settings' log
    (tools and tests that build a worker on its own)."""
    from station.audit import AuditLog

    return audit.open() if audit is not None else AuditLog()

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


def reconnecting_text(exc: SourceReconnecting) -> str:
    """A lost camera as the screen says it: the source's message with the wait before its next try
    (the backoff: 0.25 s doubling to the source's cap), ahead of the last try's error, which the
    live image leaves out."""
    head, sep, tail = str(exc).partition(" (last try")
    return f"{head}, next try in {round(exc.retry_in_s, 2):g} s{sep}{tail}"


class CaptureWorker(QObject):
    """Reads a frame source in its own thread until stopped.

    ``open_source`` builds the source from a spec string (see station.capture.sources)
    inside the worker thread, so a slow camera open never blocks the window.
    """

    frame_available = Signal()  # a frame waits in ``mailbox``
    source_opened = Signal(str)  # description of the opened source
    source_problem = Signal(str)  # non-fatal: an unreadable file in a folder, a lost camera reconnecting
    source_error = Signal(str)  # fatal for this source: it has been closed
    source_finished = Signal()  # a finite source ran out, or it was stopped
    fps_measured = Signal(float)

    def __init__(self, camera_settings: CameraSettings | None = None) -> None:
        super().__init__()
        self.mailbox: LatestMailbox[Frame] = LatestMailbox()
        self._camera_settings = camera_settings  # applied to a camera when it opens
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
            source = open_source(spec, camera=self._camera_settings)
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
            except SourceReconnecting as exc:  # a lost camera: said on the screen, tried again with backoff
                self.source_problem.emit(reconnecting_text(exc))
                self._stop.wait(exc.retry_in_s)
                continue
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

    recipe_loaded = Signal(str, str, object)  # recipe name, compute device description, {role: ModelCard}
    recipe_failed = Signal(str, str)  # recipe name, message
    recipe_unapproved = Signal(str, str, object)  # recipe name, message, its model folders (no admin approved one)
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
        from station.inference import Engine, UnapprovedModelError

        self.busy_changed.emit(True)
        try:
            engine = Engine(recipe, device=device, backend="auto")  # ONNX Runtime on the CPU: 1.5-2x faster
        except UnapprovedModelError as exc:  # an admin may approve them: the window offers it
            log.warning("cannot load recipe %s: %s", recipe.name, exc)
            dirs = [recipe.model_dir(ref) for ref in (recipe.classifier, recipe.detector) if ref is not None]
            self.recipe_unapproved.emit(recipe.name, str(exc), dirs)
        except Exception as exc:  # noqa: BLE001 — any load failure is reported, the old engine stays
            log.warning("cannot load recipe %s: %s", recipe.name, exc)
            self.recipe_failed.emit(recipe.name, str(exc))
        else:
            if self._engine is not None:
                self._engine.close()
            self._engine = engine
            self.recipe_loaded.emit(recipe.name, engine.device_description, engine.cards)
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


class AuditWorker(QObject):
    """Owns the audit log's connection in its own thread: appends (with fsync) and queries.

    Each call carries a ticket chosen by the caller; ``committed(ticket, entry)`` means the
    record is durably on disk, ``failed(ticket, message)`` that nothing was written.
    """

    committed = Signal(int, object)  # ticket, station.audit.AuditEntry
    failed = Signal(int, str)  # ticket, message for the operator
    queried = Signal(int, object)  # ticket, list[AuditEntry]
    verified = Signal(int, object)  # ticket, VerifyResult
    image_loaded = Signal(int, object)  # ticket, RGB array (None when the file is missing or unreadable)
    status_changed = Signal(object)  # station.audit.LogStatus: where records go, and whether they can be stored now

    def __init__(self, audit: AuditSetup | None = None) -> None:
        super().__init__()
        self._audit = audit
        self._log = None
        self._unreachable = False

    def _audit_log(self):
        if self._log is None:
            self._log = open_audit_log(self._audit)
        return self._log

    @Slot(int, object)
    def append(self, ticket: int, draft) -> None:
        from station.audit import AuditError, AuditUnavailableError, LogStatus

        try:
            entry = self._audit_log().append(draft)
        except (AuditError, ValueError, OSError) as exc:
            log.error("audit write failed (%s): %s", draft.action, exc)
            if isinstance(exc, AuditUnavailableError):
                self._unreachable = True
                self.status_changed.emit(LogStatus(self._audit_log().describe_location(), False, str(exc), True))
            self.failed.emit(ticket, str(exc))
        else:
            if self._unreachable:
                self.check_status()
            self.committed.emit(ticket, entry)

    @Slot()
    def check_status(self) -> None:
        """Try the log now (on a lab server: connect); answers with ``status_changed``."""
        from station.audit import AuditError, LogStatus

        try:
            status = self._audit_log().status()
        except (AuditError, OSError) as exc:
            status = LogStatus(self._audit.describe() if self._audit else "the station's audit log", False, str(exc))
        self._unreachable = status.unreachable
        self.status_changed.emit(status)

    @Slot(int, object)
    def query(self, ticket: int, filters: dict) -> None:
        from station.audit import AuditError

        try:
            entries = self._audit_log().query(**filters)
        except (AuditError, OSError, ValueError) as exc:
            self.failed.emit(ticket, str(exc))
        else:
            self.queried.emit(ticket, entries)

    @Slot(int)
    def verify(self, ticket: int) -> None:
        from station.audit import AuditError

        try:
            result = self._audit_log().verify()
        except (AuditError, OSError) as exc:
            self.failed.emit(ticket, str(exc))
        else:
            self.verified.emit(ticket, result)

    @Slot(int, str)
    def load_image(self, ticket: int, path: str) -> None:
        from station.capture.images import ImageReadError, read_image

        try:
            image = read_image(self._audit_log().image_file(path))  # recorded relative to the data folder
        except ImageReadError as exc:
            log.warning("archived image unreadable: %s", exc)
            image = None
        self.image_loaded.emit(ticket, image)

    def request_stop(self) -> None:
        pass

    @Slot()
    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class BatchWorker(QObject):
    """Runs a folder review (``station.review.runner``) in its own thread.

    ``submit(job, control)`` from the GUI thread: the worker scans the folder, loads the recipe
    (kept for the next run with the same recipe and device), syncs the folder's store and runs
    the pipelined runner, whose decode threads read ahead while this thread runs the networks.
    ``control`` (a ``RunControl``) pauses, resumes and cancels from the GUI thread. Results are
    stored batch by batch, so a cancelled run resumes where it stopped.
    """

    status = Signal(str)  # what it is doing before the first result ("Loading recipe…")
    opened = Signal(object)  # station.review.runner.BatchOpened
    progress = Signal(object)  # station.review.runner.BatchProgress
    rows_updated = Signal(object)  # list[station.review.store.ItemRow], after each stored batch
    finished = Signal(object)  # station.review.runner.RunSummary
    failed = Signal(str)  # the run could not start or stopped on an error; finished rows are kept
    _start = Signal(object, object)

    def __init__(self) -> None:
        super().__init__()
        self._control = None
        self._engine = None
        self._engine_key: tuple | None = None
        self._start.connect(self._run)

    # -- GUI thread ---------------------------------------------------------------
    def submit(self, job, control) -> None:
        self._control = control
        self._start.emit(job, control)

    def request_stop(self) -> None:
        if self._control is not None:
            self._control.cancel()

    # -- worker thread ------------------------------------------------------------
    def _engine_for(self, job):
        from station.inference import Engine

        key = (job.recipe, job.device, job.backend)
        if self._engine is None or self._engine_key != key:
            if self._engine is not None:
                self._engine.close()
                self._engine = None
            self.status.emit(f"Loading recipe {job.recipe.name}…")
            device = "cpu" if job.backend == "onnxruntime" else job.device
            self._engine = Engine(job.recipe, device=device, backend=job.backend)
            self._engine_key = key
        return self._engine

    @Slot(object, object)
    def _run(self, job, control) -> None:
        from station.review.runner import BatchOpened, BatchRunner
        from station.review.scan import scan_folder
        from station.review.store import BatchStore
        from station.review.thumbnails import ThumbnailCache

        try:
            self.status.emit(f"Scanning {job.folder}…")
            scan = scan_folder(job.folder, recursive=job.recursive)
            engine = self._engine_for(job)
            thumbnails = ThumbnailCache()
            with BatchStore.for_folder(scan.folder, job.recipe.name) as store:
                runner = BatchRunner(engine, store, scan.folder, options=job.options, thumbnails=thumbnails, control=control)
                work = runner.plan(scan)
                self.opened.emit(BatchOpened(scan.folder, store.directory, store.rows(), len(work),
                                             engine.device_description, engine.cards))

                def on_progress(progress, item_ids: list[int]) -> None:
                    self.progress.emit(progress)
                    if item_ids:
                        self.rows_updated.emit(store.rows_by_id(item_ids))

                summary = runner.run(work, on_progress)
        except Exception as exc:  # noqa: BLE001 — reported to the operator; the worker stays alive
            log.exception("batch review of %s failed", job.folder)
            self.failed.emit(str(exc))
            return
        self.finished.emit(summary)

    @Slot()
    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class BatchVerdictWorker(QObject):
    """Writes batch decisions (``station.review.verdicts``): per item, archive its image, append
    its audit entry (fsync), mark it reviewed in the folder's store. A bulk accept is one request
    and one entry per item; ``request_stop`` ends it between items."""

    committed = Signal(object, object)  # station.audit.AuditEntry, the item's new ItemRow
    failed = Signal(int, str)  # item id, why nothing was written for it
    request_done = Signal(int, int)  # entries committed, items failed
    _submit = Signal(object, object)

    def __init__(self, audit: AuditSetup | None = None) -> None:
        super().__init__()
        self._audit = audit
        self._log = None
        self._store = None
        self._stop = threading.Event()
        self._submit.connect(self._commit)

    def submit(self, context, request) -> None:
        """GUI thread: ``context`` a BatchContext, ``request`` a VerdictRequest."""
        self._stop.clear()
        self._submit.emit(context, request)

    def request_stop(self) -> None:
        self._stop.set()

    def _open(self, context):
        from station.review.store import BatchStore

        if self._log is None:
            self._log = open_audit_log(self._audit)
        if self._store is None or self._store.directory != context.store_dir:
            if self._store is not None:
                self._store.close()
            self._store = BatchStore(context.store_dir).open()
        return self._log, self._store

    @Slot(object, object)
    def _commit(self, context, request) -> None:
        from station.audit import AuditError
        from station.review.store import StoreError
        from station.review.verdicts import commit_verdict

        committed = failed = 0
        for item_id in request.item_ids:
            if self._stop.is_set():
                break
            try:
                audit_log, store = self._open(context)
                entry, row = commit_verdict(audit_log, store, context, item_id, request)
            except (AuditError, StoreError, ValueError, KeyError, OSError) as exc:
                log.error("batch verdict for item %s not written: %s", item_id, exc)
                failed += 1
                self.failed.emit(item_id, str(exc))
            else:
                committed += 1
                self.committed.emit(entry, row)
        self.request_done.emit(committed, failed)

    @Slot()
    def close(self) -> None:
        for resource in (self._log, self._store):
            if resource is not None:
                resource.close()
        self._log = self._store = None


class BatchDetailLoader(QObject):
    """Reads the full image (and stored attention maps) of the item in the batch detail view,
    always the latest request: paging quickly through the table never queues stale reads."""

    loaded = Signal(int, object, object, bool)  # item id, RGB image, AttentionMaps | None, file changed since inspected
    failed = Signal(int, str)  # item id, message
    _wake = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.mailbox: LatestMailbox = LatestMailbox()
        self._wake.connect(self._serve)

    def request(self, item_id: int, path, sha256: str | None, map_path=None) -> None:
        if self.mailbox.put((item_id, path, sha256, map_path)):
            self._wake.emit()

    def request_stop(self) -> None:
        self.mailbox.take()

    @Slot()
    def _serve(self) -> None:
        import hashlib

        from station.capture.images import ImageReadError, decode_image
        from station.review.maps import load_maps

        request = self.mailbox.take()
        if request is None:
            return
        item_id, path, sha256, map_path = request
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            image = decode_image(data, path)
        except (OSError, ImageReadError) as exc:
            self.failed.emit(item_id, str(exc))
            return
        changed = sha256 is not None and hashlib.sha256(data).hexdigest() != sha256
        maps = load_maps(map_path, image.shape[:2]) if map_path is not None and not changed else None
        self.loaded.emit(item_id, image, maps, changed)


class BatchExportWorker(QObject):
    """Writes a batch review's CSV or PDF summary off the GUI thread."""

    finished = Signal(str, str)  # kind ("csv" | "pdf"), path
    failed = Signal(str, str)  # kind, message
    _export = Signal(str, object, object)

    def __init__(self) -> None:
        super().__init__()
        self._export.connect(self._write)

    def export(self, kind: str, store_dir, path) -> None:
        """GUI thread: ``kind`` is "csv" or "pdf"."""
        self._export.emit(kind, store_dir, path)

    @Slot(str, object, object)
    def _write(self, kind: str, store_dir, path) -> None:
        from station.review.export import summarize, write_csv, write_pdf_summary
        from station.review.store import BatchStore, StoreError

        try:
            with BatchStore(store_dir) as store:
                if kind == "csv":
                    written = write_csv(store, path)
                elif kind == "pdf":
                    written = write_pdf_summary(store, summarize(store), path)
                else:
                    raise ValueError(f"unknown export kind {kind!r} (csv or pdf)")
        except (OSError, StoreError, ValueError, RuntimeError) as exc:
            log.error("batch %s export to %s failed: %s", kind, path, exc)
            self.failed.emit(kind, str(exc))
        else:
            self.finished.emit(kind, str(written))


class UsersWorker(QObject):
    """Sign-in, e-signatures, the first admin and model approvals, off the GUI thread (argon2
    takes about a second by design, and each try is an audit entry).

    Every call carries a ticket; ``answered(ticket, ok, value)`` carries the result
    (``User``, ``Signature``, ``bool`` or a list of entries) or, when ``ok`` is False, the
    message for the person at the station. Nothing here echoes a password. ``committed(entry)``
    comes for each audit entry written here (a failed try, a lock, the first admin, an approval),
    before the answer of the call that wrote it.
    """

    answered = Signal(int, bool, object)
    committed = Signal(object)  # station.audit.AuditEntry

    def __init__(self, audit: AuditSetup | None = None, lockout_s: float | None = None) -> None:
        super().__init__()
        self._audit = audit
        self._lockout_s = lockout_s
        self._users = None

    def _directory(self):
        if self._users is None:
            from station.users.directory import LOCKOUT_S, UserDirectory

            self._users = UserDirectory(open_audit_log(self._audit), lockout_s=self._lockout_s or LOCKOUT_S,
                                        on_committed=self.committed.emit)
        return self._users

    def _answer(self, ticket: int, call) -> None:
        from station.audit import AuditError
        from station.ml.cards import ModelLoadError
        from station.users import AuthenticationError, PermissionDenied

        try:
            value = call(self._directory())
        except (AuthenticationError, PermissionDenied, AuditError, ModelLoadError, ValueError, KeyError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self.answered.emit(ticket, False, message)
        else:
            self.answered.emit(ticket, True, value)

    @Slot(int, str, str)
    def sign_in(self, ticket: int, user_id: str, password: str) -> None:
        self._answer(ticket, lambda users: users.sign_in(user_id, password))

    @Slot(int, str, str, str)
    def sign(self, ticket: int, user_id: str, password: str, permission: str) -> None:
        from station.users import Permission

        self._answer(ticket, lambda users: users.sign(user_id, password, Permission(permission)))

    @Slot(int, str, str, str)
    def add_first_admin(self, ticket: int, user_id: str, name: str, password: str) -> None:
        self._answer(ticket, lambda users: users.add_first_admin(user_id, name, password))

    @Slot(int)
    def has_users(self, ticket: int) -> None:
        self._answer(ticket, lambda users: users.has_users())

    @Slot(int, object, object)
    def approve_models(self, ticket: int, model_dirs, signature) -> None:
        from station.users.approvals import ModelApprovals, ModelHashes, approve_model

        def approve(users):
            approvals = ModelApprovals.from_log(users.log)
            entries = []
            for model_dir in model_dirs:
                if approvals.find(ModelHashes.of(model_dir)) is None:
                    entries.append(approve_model(users.log, model_dir, signature))
                    self.committed.emit(entries[-1])
            return entries

        self._answer(ticket, approve)

    def request_stop(self) -> None:
        pass

    @Slot()
    def close(self) -> None:
        if self._users is not None:
            self._users.log.close()
            self._users = None


class CameraDiscoveryWorker(QObject):
    """Lists the attached cameras (``station.capture.discovery``, what ``station cameras`` prints):
    GigE Vision discovery takes a second or more, so never on the GUI thread. ``found(listing)``
    carries a ``CameraListing`` (with the reason when a kind of camera cannot be listed)."""

    found = Signal(object)

    @Slot()
    def discover(self) -> None:
        from station.capture.discovery import CameraListing, discover_cameras

        try:
            listing = discover_cameras()
        except (OSError, RuntimeError, ValueError) as exc:  # a driver that misbehaves: said, not fatal
            log.warning("camera discovery failed: %s", exc)
            listing = CameraListing(genicam_unavailable=f"camera discovery failed: {exc}")
        self.found.emit(listing)


class ScaleWorker(QObject):
    """Measures a stage micrometer's image (``station.capture.scale``): reading a 20-MP image and its
    profile takes a second or more. ``measured(ticket, ok, value)``: a ``RulingMeasurement``, or
    when not ok the reason for the person calibrating."""

    measured = Signal(int, bool, object)

    @Slot(int, str)
    def measure(self, ticket: int, path: str) -> None:
        from station.capture.images import ImageReadError, read_image
        from station.capture.scale import ScaleError, measure_ruling

        try:
            self.measured.emit(ticket, True, measure_ruling(read_image(path)))
        except (ImageReadError, ScaleError, OSError) as exc:
            self.measured.emit(ticket, False, str(exc))


class WorkerThread:
    """Owns a worker and the QThread it lives on; ``stop`` ends both without blocking the GUI
    for longer than its timeout."""

    def __init__(self, worker: QObject, name: str) -> None:
        self.worker = worker
        self.name = name
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.start()

    def request_finish(self) -> None:
        """Ask the worker to stop and the thread's event loop to end; returns at once."""
        request_stop = getattr(self.worker, "request_stop", None)
        if request_stop is not None:
            request_stop()
        self.thread.quit()

    def stop(self, timeout_ms: int = 3000, then: Callable[[], None] | None = None) -> bool:
        """Ask the thread to finish and wait for it at most ``timeout_ms``; True when it has ended.

        ``then`` (resources the worker used, closed on the GUI thread) runs once the thread has
        ended: now, or, when it is still busy, later on the GUI thread. A thread still busy is
        kept alive past its owner in ``FINISHING`` (a QThread destroyed while it runs aborts the
        process) and released when it ends.
        """
        self.request_finish()
        return self.wait(timeout_ms, then)

    def wait(self, timeout_ms: int, then: Callable[[], None] | None = None) -> bool:
        """After ``request_finish``: ``stop`` without asking again."""
        if self.thread.wait(max(0, timeout_ms)):
            if then is not None:
                then()
            return True
        log.warning("%s thread still busy after %d ms: it is released when it ends", self.name, timeout_ms)
        FINISHING.keep(self, then)
        return False


class FinishingThreads(QObject):
    """Worker threads still running after their window closed, each kept until it ends.

    Lives on the GUI thread: a thread's ``finished`` is queued here, and the thread is waited
    for (it is past its event loop by then) and dropped on the GUI thread.
    """

    released = Signal(str)  # the thread's name, once it has ended and its ``then`` ran

    def __init__(self) -> None:
        super().__init__()
        self._kept: dict[QThread, tuple[WorkerThread, Callable[[], None] | None]] = {}

    def keep(self, worker_thread: WorkerThread, then: Callable[[], None] | None) -> None:
        self._kept[worker_thread.thread] = (worker_thread, then)
        worker_thread.thread.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        if worker_thread.thread.isFinished():  # ended between the wait and the connection
            QTimer.singleShot(0, self._on_finished)

    def names(self) -> list[str]:
        return [worker_thread.name for worker_thread, _ in self._kept.values()]

    @Slot()
    def _on_finished(self) -> None:
        for thread in [t for t in self._kept if t.isFinished()]:
            self._release(thread)

    def _release(self, thread: QThread) -> None:
        worker_thread, then = self._kept.pop(thread)
        thread.wait(1000)  # finished is emitted just before the thread's last instructions
        if then is not None:
            try:
                then()
            except Exception:  # noqa: BLE001 — a failed close must not keep the other threads
                log.exception("closing after the %s thread failed", worker_thread.name)
        log.info("%s thread ended after its window closed", worker_thread.name)
        self.released.emit(worker_thread.name)

    def wait_all(self, timeout_ms: int) -> bool:
        """At process exit, after the event loop: wait for the threads still kept, at most
        ``timeout_ms`` in all; True when none is left running."""
        deadline = time.monotonic() + timeout_ms / 1000
        for thread in list(self._kept):
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if thread.wait(left_ms):
                self._release(thread)
        return not self._kept


FINISHING = FinishingThreads()
