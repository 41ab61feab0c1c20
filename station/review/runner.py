"""The pipelined batch runner: read, hash and decode on a few threads while the networks run.

    scan = scan_folder(folder, recursive=True)
    with BatchStore.for_folder(scan.folder, recipe.name) as store:
        runner = BatchRunner(Engine(recipe, device), store, scan.folder, options=RunOptions(want_attention=False))
        summary = runner.run(runner.plan(scan), on_progress)

Pipeline. A small thread pool reads each file, hashes it (sha256), decodes it
(``station.capture.images.decode_image``), writes its thumbnail and prepares each network's
input from its card; up to ``prefetch`` files are in flight ahead of the networks. The calling
thread takes the prepared images in folder order, ``batch_size`` at a time, and hands each
batch to ``Engine.run_batch`` (each network once per batch; one image at a time when attention
maps are wanted). OpenCV, hashlib and torch release the GIL, so decoding
overlaps inference. On the CPU, batches go to *inference lanes*: as many threads as torch's
thread budget, each running torch single-threaded, so one lane's classifier overlaps another's
detector and the decoders. On two shared cores this beats one batch at a time on two OpenMP
threads several times over: an OpenMP team whose threads lose their core to a decoder (or to
another process) spins at every barrier. With attention maps each lane runs the engine on its
own copy of the models (CAM hooks are per model). On a GPU one lane feeds large batches.

Nothing aborts the batch: an unreadable, truncated, oversized or foreign file (a dangling or
looping link, a pipe) becomes an error outcome with the reason, and an image the networks fail
on is retried alone and then recorded as an error. Errors that are not the file's content (it
could not be opened, the station's disk was full or read-only when its maps were stored) are
read again by the next run (``RETRY_NEXT_RUN``). Outcomes are written to the store once per batch, so a cancelled or crashed run resumes
where it stopped. ``RunControl`` pauses and cancels from any thread.

The threads here are plain ``concurrent.futures`` workers so that the headless command runs
the same pipeline; the GUI runs ``BatchRunner.run`` on its own worker thread
(``station.ui.workers.BatchWorker``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from station.capture.images import DEFAULT_MAX_PIXELS, ImageReadError, decode_image, file_problem
from station.inference import Engine, EngineError, InspectionResult, PreparedImage, Recipe
from station.review.maps import save_maps
from station.review.results import top_defect
from station.review.scan import FolderScan, absolute_path
from station.review.store import (
    RETRY_NEXT_RUN, BatchStore, ItemOutcome, ItemRow, ItemState, WorkItem, recipe_fingerprint,
)
from station.storage import describe_os_error, is_storage_error
from station.review.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

_RATE_WINDOW_S = 10.0  # throughput and ETA follow the last few seconds, not the whole run


def default_batch_size(engine: Engine) -> int:
    # CPU: a few images amortise per-call overheads without delaying the first results much
    return 32 if engine.device.type == "cuda" else 4


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_decode_workers() -> int:
    return max(2, min(8, _cores()))


def engine_fingerprint(engine: Engine, reference: np.ndarray | None = None) -> str:
    reference_sha256 = hashlib.sha256(np.ascontiguousarray(reference).tobytes()).hexdigest() if reference is not None else None
    return recipe_fingerprint(
        engine.recipe.to_dict(), [(m.name, m.sha256) for m in engine.models], engine.thresholds, reference_sha256
    )


def plan(store: BatchStore, scan: FolderScan, fingerprint: str, thumbnails: ThumbnailCache) -> list[WorkItem]:
    """Sync the store with ``scan`` and list the files to read: new, changed or stale ones, and
    finished ones whose thumbnail is missing."""
    summary = store.sync(scan)
    stale = store.invalidate_other_fingerprints(fingerprint)
    log.info(
        "batch %s: %d new, %d changed, %d removed, %d unchanged files; %d results from other models",
        scan.folder, summary.new, summary.changed, summary.removed, summary.unchanged, stale,
    )
    store.set_meta(fingerprint=fingerprint, recursive=str(scan.recursive))
    return [
        item for item in store.work_items()
        if item.needs_inspection or (item.state == ItemState.DONE.value and not thumbnails.has(item.sha256 or ""))
    ]


class RunControl:
    """Pause, resume and cancel a run from any thread."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._cancelled = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def wait_while_paused(self, on_pause: Callable[[], None] | None = None) -> float:
        """Block while paused (returns at once when running or cancelled); the seconds spent paused."""
        if self._running.is_set():
            return 0.0
        start = time.monotonic()
        if on_pause is not None:
            on_pause()
        self._running.wait()
        return time.monotonic() - start


@dataclass(frozen=True)
class RunOptions:
    want_attention: bool = True
    batch_size: int | None = None  # None: default_batch_size(engine)
    decode_workers: int | None = None  # None: default_decode_workers()
    # CPU only: batches computed at once, each single-threaded (None: torch's thread count, at most the cores)
    inference_lanes: int | None = None
    reference: np.ndarray | None = None  # the defect-free template, for recipes that compare against one
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # images whose header claims more are refused undecoded


@dataclass(frozen=True)
class BatchJob:
    """What the GUI asks its batch worker to run."""

    folder: Path
    recipe: Recipe
    recursive: bool = False
    device: str = "auto"
    options: RunOptions = field(default_factory=RunOptions)
    backend: str = "torch"  # "onnxruntime": the networks' CPU arithmetic (Grad-CAM stays torch's); "auto"


@dataclass(frozen=True)
class BatchOpened:
    """A folder's review, synced and planned: every row (finished ones from earlier runs included)."""

    folder: Path
    store_dir: Path
    rows: list[ItemRow]
    n_to_read: int
    device: str
    cards: dict = field(default_factory=dict)  # the engine's model cards by role (station.ml.cards.ModelCard)


@dataclass(frozen=True)
class BatchProgress:
    done: int  # files finished this run (inspected, failed, or found unchanged)
    total: int  # files this run works through
    inspected: int  # images the networks ran on this run
    errors: int  # files that failed this run
    elapsed_s: float  # running time, pauses excluded
    images_per_s: float  # over the last few seconds
    eta_s: float | None
    paused: bool = False


@dataclass(frozen=True)
class RunSummary:
    total: int  # files this run worked through
    inspected: int
    unchanged: int  # changed on disk, but the same content: result kept
    errors: int
    seconds: float  # from the first file read to the last result stored, pauses excluded
    images_per_s: float  # inspected images per second over the whole run
    cancelled: bool
    device: str


@dataclass
class _Read:
    """A file after the decode thread: what the calling thread needs to finish it."""

    item: WorkItem
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None
    prepared: PreparedImage | None = None
    error: str | None = None
    model_error: bool = False  # the error depends on the recipe (not on the file alone)
    retry: bool = False  # the error is not the file's content: the next run reads it again
    unchanged: bool = False


@dataclass
class _Rate:
    window_s: float = _RATE_WINDOW_S
    marks: deque = field(default_factory=deque)

    def add(self, now: float, count: int) -> None:
        self.marks.append((now, count))
        while len(self.marks) > 2 and now - self.marks[0][0] > self.window_s:
            self.marks.popleft()

    def per_second(self) -> float:
        if len(self.marks) < 2:
            return 0.0
        span = self.marks[-1][0] - self.marks[0][0]
        return sum(c for _, c in list(self.marks)[1:]) / span if span > 0 else 0.0


class BatchRunner:
    """Runs one engine over work items of one folder, writing outcomes to ``store``.

    ``run`` is synchronous and uses the calling thread for the networks; call it from one
    thread at a time.
    """

    def __init__(
        self,
        engine: Engine,
        store: BatchStore,
        folder: Path,
        *,
        options: RunOptions | None = None,
        thumbnails: ThumbnailCache | None = None,
        control: RunControl | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.folder = Path(folder)
        self.options = options or RunOptions()
        self.thumbnails = thumbnails or ThumbnailCache()
        self.control = control or RunControl()
        self.fingerprint = engine_fingerprint(engine, self.options.reference)
        self.batch_size = max(1, self.options.batch_size or default_batch_size(engine))
        self.decode_workers = max(1, self.options.decode_workers or default_decode_workers())
        self.inference_lanes = self._lanes()
        self._calling_thread: threading.Thread | None = None
        self._lane_local = threading.local()

    def plan(self, scan: FolderScan) -> list[WorkItem]:
        """Sync the store with ``scan``; the work items for :meth:`run` (see :func:`plan`)."""
        return plan(self.store, scan, self.fingerprint, self.thumbnails)

    def _lanes(self) -> int:
        if self.engine.device.type != "cpu":
            return 1  # a GPU is fed best by one thread with large batches
        if self.options.inference_lanes is not None:
            return max(1, self.options.inference_lanes)
        return max(1, min(torch.get_num_threads(), _cores()))

    # -- decode threads -------------------------------------------------------------------
    def _read(self, item: WorkItem) -> _Read:
        try:
            return self._read_file(item)
        except Exception as exc:  # noqa: BLE001 — whatever a hostile file does, it is one error row
            log.warning("reading %s failed: %s", item.relative_path, exc, exc_info=True)
            return _Read(item, error=f"cannot be read ({type(exc).__name__}: {exc})", retry=True)

    def _read_file(self, item: WorkItem) -> _Read:
        read = _Read(item)
        path = absolute_path(self.folder, item.relative_path)
        problem = file_problem(path)  # before open(): a pipe named x.png would block the reader
        if problem:
            read.error, read.retry = problem, True
            return read
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read()
        except OSError as exc:
            read.error, read.retry = f"cannot open the file ({exc.strerror or exc})", True
            return read
        except MemoryError:
            read.error = "too large to read into memory"
            return read
        read.size, read.mtime_ns = stat.st_size, stat.st_mtime_ns
        read.sha256 = hashlib.sha256(data).hexdigest()
        same_content = item.sha256 is not None and read.sha256 == item.sha256
        has_thumbnail = self.thumbnails.has(read.sha256)
        inspect = item.needs_inspection and not (item.state == ItemState.CHECK.value and same_content)
        if not inspect and not same_content:
            inspect = True  # a finished file changed after the folder was scanned
        read.unchanged = not inspect
        if read.unchanged and has_thumbnail:
            return read
        if not data:
            read.error, read.unchanged = "the file is empty (0 bytes)", False
            return read
        try:
            image = decode_image(data, path, max_pixels=self.options.max_pixels)
        except ImageReadError as exc:
            read.error, read.unchanged = exc.reason, False
            return read
        del data  # a large file's bytes need not wait for the networks
        if not has_thumbnail:
            try:
                self.thumbnails.write(read.sha256, image)
            except (OSError, ValueError) as exc:
                log.warning("no thumbnail for %s: %s", path, exc)
        if read.unchanged:
            return read
        try:
            read.prepared = self.engine.prepare(image, self.options.reference, request_id=item.item_id)
        except EngineError as exc:
            read.error, read.model_error = str(exc), True
        return read

    # -- calling thread -------------------------------------------------------------------
    def _error_outcome(self, read: _Read) -> ItemOutcome:
        return ItemOutcome(
            item_id=read.item.item_id, size=read.size, mtime_ns=read.mtime_ns, sha256=read.sha256,
            state=ItemState.ERROR, error=read.error,
            fingerprint=RETRY_NEXT_RUN if read.retry else self.fingerprint if read.model_error else None,
        )

    def _result_outcome(self, read: _Read, result: InspectionResult, has_maps: bool) -> ItemOutcome:
        call = result.material
        top = top_defect(result)
        height, width = result.image_size
        return ItemOutcome(
            item_id=read.item.item_id, size=read.size, mtime_ns=read.mtime_ns, sha256=read.sha256,
            state=ItemState.DONE, fingerprint=self.fingerprint, width=width, height=height,
            material=call.material if call else None, confidence=call.confidence if call else None,
            uncertain=result.needs_expert if call or result.image_problems or result.familiarity else None,
            n_defects=len(result.defects),
            top_defect_label=top.label if top else None, top_defect_score=top.score if top else None,
            has_maps=has_maps, result=result.to_dict(), attention_on_part=result.attention_on_part,
        )

    def _lane_engine(self) -> Engine:
        """The engine for attention maps on this thread. Its CAM hooks make a run with maps one
        thread's at a time, so each inference lane loads its own copy of the recipe's models."""
        if threading.current_thread() is self._calling_thread:
            return self.engine
        engine = getattr(self._lane_local, "engine", None)
        if engine is None:
            engine = self._lane_local.engine = Engine(
                self.engine.recipe, device="cpu", warm_up=False, approvals=getattr(self.engine, "approvals", None),
                backend=getattr(self.engine, "backend", "torch"),  # the run's runtime, not torch's by default
            )
        return engine

    def _inspect_one(self, read: _Read) -> ItemOutcome:
        """The engine on one image (with attention maps when wanted); errors become outcomes."""
        assert read.prepared is not None
        try:
            if self.options.want_attention:
                result = self._lane_engine().run_batch([read.prepared], want_attention=True)[0]
                has_maps = False
                if result.attention is not None and read.sha256 is not None:
                    has_maps = save_maps(self.store.map_path(read.sha256), result.attention)
                return self._result_outcome(read, result, has_maps)
            result = self.engine.run_batch([read.prepared])[0]
            return self._result_outcome(read, result, False)
        except Exception as exc:  # noqa: BLE001 — one bad image must not stop the batch
            if is_storage_error(exc):  # the station's disk, not the image: try it again next run
                log.warning("result of %s not stored: %s", read.item.relative_path, exc)
                read.error, read.retry = f"not stored, {describe_os_error(exc)} ({exc}); the next run inspects it again", True
                return self._error_outcome(read)
            log.warning("inspection failed for %s: %s", read.item.relative_path, exc)
            read.error, read.model_error = f"inspection failed: {exc}", True
            return self._error_outcome(read)

    def _inspect(self, reads: Sequence[_Read]) -> list[ItemOutcome]:
        if self.options.want_attention or len(reads) == 1:
            return [self._inspect_one(read) for read in reads]
        try:
            results = self.engine.run_batch([r.prepared for r in reads])  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 — find the image at fault by running them one by one
            log.warning("batch of %d failed (%s); running its images one by one", len(reads), exc)
            return [self._inspect_one(read) for read in reads]
        return [self._result_outcome(read, result, False) for read, result in zip(reads, results)]

    def run(
        self,
        items: Sequence[WorkItem],
        on_progress: Callable[[BatchProgress, list[int]], None] | None = None,
    ) -> RunSummary:
        """Work through ``items``; ``on_progress(progress, item_ids)`` after each stored batch
        (and once when pausing). Returns early, with ``cancelled``, when the control cancels."""
        self._calling_thread = threading.current_thread()
        total = len(items)
        pending = deque(items)
        in_flight: deque[Future[_Read]] = deque()
        # batches handed to the inference lanes, oldest first: (outcomes known already, lane's future)
        queued: deque[tuple[list[ItemOutcome], Future[list[ItemOutcome]] | None]] = deque()
        prefetch = (1 + self.inference_lanes) * self.batch_size + self.decode_workers
        counts = {"done": 0, "inspected": 0, "unchanged": 0, "errors": 0}
        paused_s = 0.0
        rate = _Rate()
        start = time.monotonic()
        rate.add(start, 0)

        def progress(item_ids: list[int], paused: bool = False) -> None:
            if on_progress is None:
                return
            now = time.monotonic()
            per_second = rate.per_second()
            remaining = total - counts["done"]
            eta = remaining / per_second if per_second > 0 else (0.0 if remaining == 0 else None)
            on_progress(
                BatchProgress(counts["done"], total, counts["inspected"], counts["errors"], now - start - paused_s,
                              per_second, eta, paused),
                item_ids,
            )

        def finish(outcomes: list[ItemOutcome], lane: Future[list[ItemOutcome]] | None) -> None:
            if lane is not None:
                outcomes = outcomes + lane.result()
            self.store.write_outcomes(outcomes)
            counts["inspected"] += sum(1 for o in outcomes if o.state is ItemState.DONE and not o.unchanged)
            counts["unchanged"] += sum(1 for o in outcomes if o.unchanged)
            counts["errors"] += sum(1 for o in outcomes if o.state is ItemState.ERROR)
            counts["done"] += len(outcomes)
            rate.add(time.monotonic(), sum(1 for o in outcomes if not o.unchanged))
            progress([o.item_id for o in outcomes])

        decode_pool = ThreadPoolExecutor(
            self.decode_workers, thread_name_prefix="batch-decode", initializer=_one_torch_thread
        )
        lanes = (
            ThreadPoolExecutor(self.inference_lanes, thread_name_prefix="batch-infer", initializer=_one_torch_thread)
            if self.inference_lanes > 1 else None
        )
        previous_threads = torch.get_num_threads()
        try:
            while (pending or in_flight or queued) and not self.control.cancelled:
                paused_for = self.control.wait_while_paused(lambda: progress([], paused=True))
                if paused_for:
                    paused_s += paused_for
                    rate.marks.clear()
                    rate.add(time.monotonic(), 0)
                    continue
                if pending or in_flight:
                    while pending and len(in_flight) < prefetch:
                        in_flight.append(decode_pool.submit(self._read, pending.popleft()))
                    outcomes, to_inspect = self._next_batch(in_flight, pending, decode_pool)
                    if to_inspect and lanes is not None:
                        queued.append((outcomes, lanes.submit(self._inspect, to_inspect)))
                    else:
                        queued.append((outcomes + (self._inspect(to_inspect) if to_inspect else []), None))
                input_left = bool(pending or in_flight)
                # store batches in order; wait for the oldest only when every lane is busy or nothing is left
                while queued and (
                    queued[0][1] is None or queued[0][1].done() or len(queued) >= self.inference_lanes or not input_left
                ):
                    finish(*queued.popleft())
            while queued:  # cancelled: the batches already computing are still stored
                finish(*queued.popleft())
        finally:
            decode_pool.shutdown(wait=True, cancel_futures=True)
            if lanes is not None:
                lanes.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(previous_threads)  # the lanes' setting is also the default of new threads
        seconds = max(time.monotonic() - start - paused_s, 1e-9)
        return RunSummary(
            total=total, inspected=counts["inspected"], unchanged=counts["unchanged"], errors=counts["errors"],
            seconds=seconds, images_per_s=counts["inspected"] / seconds,
            cancelled=self.control.cancelled and counts["done"] < total, device=self.engine.device_description,
        )

    def _next_batch(
        self, in_flight: deque[Future[_Read]], pending: deque[WorkItem], decode_pool: ThreadPoolExecutor
    ) -> tuple[list[ItemOutcome], list[_Read]]:
        """Take decoded files in folder order until ``batch_size`` of them need the networks;
        the others (errors, unchanged files) are outcomes already. Keeps the decoders fed."""
        outcomes: list[ItemOutcome] = []
        to_inspect: list[_Read] = []
        while in_flight and len(to_inspect) < self.batch_size:
            read = in_flight.popleft().result()
            if pending:
                in_flight.append(decode_pool.submit(self._read, pending.popleft()))
            if read.error is not None:
                outcomes.append(self._error_outcome(read))
            elif read.unchanged:
                outcomes.append(ItemOutcome(read.item.item_id, read.size, read.mtime_ns, read.sha256, ItemState.DONE,
                                            unchanged=True))
            else:
                to_inspect.append(read)
            if self.control.cancelled:
                break
        return outcomes, to_inspect


def _one_torch_thread() -> None:
    """Pipeline threads run torch single-threaded: parallelism comes from the lanes and decoders,
    and OpenMP teams competing for the same cores stall each other."""
    torch.set_num_threads(1)
