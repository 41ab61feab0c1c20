"""The live source as the main window sees it: start, stop, pause, each new frame, and a
source that stopped or stalled, said on the image (a mixin of
:class:`station.ui.main_window.MainWindow`; frames are read in ``workers.CaptureWorker``)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

STALLED_AFTER_S = 2.0  # a live source silent this long is stalled (a pulled cable, a hung driver)


class LiveSourceMixin:
    # No @Slot here: PySide6 takes a decorated method of a class that is not a QObject for a slot
    # it already knows, and calls it in the emitting worker thread (a crash when it touches a widget).
    def _start_discovery(self) -> None:
        """The camera picker's list comes from a worker (GigE Vision discovery takes a second)."""
        from station.ui.workers import CameraDiscoveryWorker, WorkerThread

        self.discovery = CameraDiscoveryWorker()
        self.discovery_thread = WorkerThread(self.discovery, "cameras")
        self._discover_cameras.connect(self.discovery.discover)
        self.discovery.found.connect(self._on_cameras_found)
        self._switch_to = ""  # a source picked while another runs: started once that one has stopped

    def refresh_cameras(self) -> None:
        self._discover_cameras.emit()

    def _on_cameras_found(self, listing) -> None:
        choices = listing.choices()
        note = "" if choices else "No camera found"
        if listing.genicam_unavailable:
            note = f"GenICam cameras not listed: {listing.genicam_unavailable}"
        self.source_bar.set_cameras(choices, note)
        self.cameras_listed.emit(listing)

    def choose_source(self, spec: str) -> None:
        """A pick in the source picker: saved, and, while another source runs, switched to."""
        self.settings.camera.source = spec
        if not self.source_bar.stop_button.isEnabled():
            return
        if spec != self.source_bar.in_use:
            self._switch_to = spec
            self.stop_source()

    def start_source(self, spec: str) -> None:
        self.source_bar.set_running(True)
        self.source_bar.mark_in_use(spec)
        self.source_label.setText(f"Source: opening {spec}…")
        self.settings.camera.source = spec
        self._run_source.emit(spec)

    def stop_source(self) -> None:
        self.capture.request_stop()

    def _show_latest_frame(self) -> None:
        frame = self.capture.mailbox.take()
        if frame is None:
            return
        self.latest_frame = frame
        self.frames_shown += 1
        self._last_frame_at = time.monotonic()
        # While a capture is classified and until its result is painted, the live view keeps its
        # picture for those ~100 ms: its paints would take CPU from the inference on a 2-core PC.
        if not (self.is_classifying or self._awaiting_paint):
            self.live_view.set_image(frame.image)
        if not self._frame_fresh:
            self._mark_source("")
        self.frame_shown.emit()

    def _mark_source(self, notice: str) -> None:
        """A stopped or stalled source is said on the live image, and Capture waits for a fresh frame."""
        self._frame_fresh = not notice
        self.live_view.set_notice(notice)
        self._refresh()

    def _stale_notice(self, what: str) -> str:
        if self.latest_frame is None:
            return what
        return f"{what} — last frame {time.strftime('%H:%M:%S', time.localtime(self.latest_frame.timestamp))}" \
            if self.latest_frame.timestamp > 1e9 else what

    def _check_stalled(self) -> None:
        """A running source that has sent nothing for ``STALLED_AFTER_S`` is stalled."""
        if self._frame_fresh and self.source_bar.stop_button.isEnabled() and not self.source_bar.pause_button.isChecked() \
                and time.monotonic() - self._last_frame_at > STALLED_AFTER_S:
            self.fps_label.setText("— fps")  # the last rate measured is not what the camera sends now
            self._mark_source(self._stale_notice("NO NEW FRAMES — source stalled"))

    def _on_pause_toggled(self, paused: bool) -> None:
        self.capture.set_paused(paused)
        if paused:
            self._mark_source(self._stale_notice("PAUSED"))

    def _on_source_opened(self, description: str) -> None:
        self.source_label.setText(f"Source: {description}")
        log.info("source opened: %s", description)
        self.source_started.emit(description)

    def _on_source_problem(self, message: str) -> None:
        log.warning("source problem: %s", message)
        self.statusBar().showMessage(message, 8000)
        notice = self.live_view.notice()
        if notice and not self._frame_fresh:  # a lost camera: what the station does about it, on the image
            self.live_view.set_notice(f"{notice.splitlines()[0]}\n{message.split(' (last try')[0]}")

    def _on_source_error(self, message: str) -> None:
        self.source_label.setText("Source: none")
        self.source_bar.mark_in_use("")  # it never opened (or died): the picker must not call it in use
        self.live_view.set_placeholder(message)
        self._mark_source(self._stale_notice("SOURCE DISCONNECTED"))
        self.notify("Source error", message)

    def _on_source_finished(self) -> None:
        self.source_bar.set_running(False)
        self.fps_label.setText("— fps")
        if not self.source_label.text().endswith(("none", "(stopped)")):
            self.source_label.setText(self.source_label.text() + " (stopped)")
        if self.latest_frame is not None:
            self._mark_source(self._stale_notice("SOURCE STOPPED"))
        self.source_stopped.emit()
        spec, self._switch_to = self._switch_to, ""
        if spec:
            self.start_source(spec)

    def _on_fps(self, fps: float) -> None:
        self.fps_label.setText(f"{fps:.1f} fps")
