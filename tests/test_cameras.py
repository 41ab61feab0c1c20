"""Cameras as a lab has them: saved settings reach the camera, listing, GenICam (Aravis), reconnecting."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from station.capture import SimulatedMicroscope, SourceError, open_source
from station.config import CameraSettings


class RefusingCapture:
    """A cv2.VideoCapture stand-in that accepts what it is told, but delivers 640x480 @ 15 fps."""

    def __init__(self) -> None:
        self.settings: dict[int, float] = {}
        self.count = 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        self.count += 1
        return True, np.full((480, 640, 3), self.count % 256, np.uint8)

    def set(self, prop: int, value: float) -> bool:
        self.settings[prop] = value
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 15.0, cv2.CAP_PROP_EXPOSURE: 156.0}.get(prop, 0.0)

    def release(self) -> None:
        pass


def test_saved_camera_settings_reach_the_camera_and_refusals_are_reported():
    capture = RefusingCapture()
    saved = CameraSettings(source="0", width=1920, height=1080, fps=60.0, exposure=100.0, stall_timeout_s=1.5)
    camera = open_source("0", camera=saved, capture_factory=lambda *_: capture)
    assert camera.stall_timeout_s == 1.5
    with camera:
        camera.read()
    assert capture.settings[cv2.CAP_PROP_FRAME_WIDTH] == 1920 and capture.settings[cv2.CAP_PROP_FRAME_HEIGHT] == 1080
    assert capture.settings[cv2.CAP_PROP_FPS] == 60 and capture.settings[cv2.CAP_PROP_EXPOSURE] == 100
    assert "640x480" in camera.describe() and "requested 1920x1080 @ 60 fps exposure 100" in camera.describe()
    problems = " | ".join(camera.problems)
    assert "640x480 instead of the requested 1920x1080" in problems
    assert "15 fps instead of the requested 60" in problems
    assert "exposure reads back as 156" in problems


def test_saved_camera_settings_leave_the_demo_and_files_alone():
    source = open_source("demo", camera=CameraSettings(width=1920, height=1080, fps=5.0))
    assert isinstance(source, SimulatedMicroscope) and source.size == (480, 640) and source.nominal_fps == 30


def test_capture_worker_opens_the_source_with_the_saved_settings(qtbot, monkeypatch):
    from station.capture import sources
    from station.ui.workers import CaptureWorker

    seen = {}

    def fake_open_source(spec, **options):
        seen.update(options, spec=spec)
        raise SourceError("no camera here")

    monkeypatch.setattr(sources, "open_source", fake_open_source)
    saved = CameraSettings(width=2448, height=2048, exposure=5000.0)
    worker = CaptureWorker(saved)
    with qtbot.waitSignal(worker.source_error) as error:
        worker.run_source("2")
    assert error.args == ["no camera here"]
    assert seen == {"spec": "2", "camera": saved}


class UnpluggableCapture(RefusingCapture):
    """Delivers frames until ``unplugged`` is set; then reads fail and opening fails until it is cleared."""

    unplugged = False

    def isOpened(self) -> bool:
        return not UnpluggableCapture.unplugged

    def read(self):
        if UnpluggableCapture.unplugged:
            return False, None
        return super().read()


def test_camera_reconnects_with_backoff_until_it_is_back(monkeypatch):
    from station.capture import CameraSource, SourceReconnecting
    from station.capture.base import Backoff

    monkeypatch.setattr(UnpluggableCapture, "unplugged", False)
    camera = CameraSource(0, stall_timeout_s=0.05, capture_factory=lambda *_: UnpluggableCapture(),
                          backoff=Backoff(first_s=0.01, max_s=0.04))
    with camera:
        assert camera.read().image.shape == (480, 640, 3) and camera.state == "live"
        UnpluggableCapture.unplugged = True
        delays = []
        for _ in range(5):
            with pytest.raises(SourceReconnecting) as lost:
                camera.read()
            delays.append(lost.value.retry_in_s)
            time.sleep(lost.value.retry_in_s)
        assert camera.state == "reconnecting" and max(delays) <= 0.04
        UnpluggableCapture.unplugged = False
        time.sleep(0.04)
        frame = camera.read()
        assert frame is not None and camera.state == "live" and camera.reconnects == 1
        assert camera.read() is not None
    assert camera.state == "closed"
    assert any("no new frame" in p and "reconnecting" in p for p in camera.problems)
    assert any("is back after" in p for p in camera.problems)


def test_capture_worker_keeps_a_lost_camera_and_resumes_when_it_is_back(qtbot, monkeypatch):
    from PySide6.QtCore import QObject, Signal

    from station.capture import CameraSource, sources
    from station.capture.base import Backoff
    from station.ui.workers import CaptureWorker, WorkerThread

    monkeypatch.setattr(UnpluggableCapture, "unplugged", False)
    monkeypatch.setattr(sources, "open_source", lambda spec, **_: CameraSource(
        0, stall_timeout_s=0.1, capture_factory=lambda *_: UnpluggableCapture(), backoff=Backoff(0.05, 0.2)))

    class Starter(QObject):
        start = Signal(str)

    worker = CaptureWorker(CameraSettings())
    thread = WorkerThread(worker, "capture-test")
    starter = Starter()
    starter.start.connect(worker.run_source)
    problems: list[str] = []
    worker.source_problem.connect(problems.append)
    try:
        with qtbot.waitSignal(worker.frame_available, timeout=5000):
            starter.start.emit("0")
        UnpluggableCapture.unplugged = True
        qtbot.waitUntil(lambda: any("reconnecting for" in p for p in problems), timeout=5000)
        worker.mailbox.take()
        UnpluggableCapture.unplugged = False
        with qtbot.waitSignal(worker.frame_available, timeout=5000):
            pass
        qtbot.waitUntil(lambda: any("is back after" in p for p in problems), timeout=5000)
        with qtbot.waitSignal(worker.source_finished, timeout=5000):
            worker.request_stop()
    finally:
        assert thread.stop()


# -- backends (issue 29: MSMF opens slowly on Windows; exposure units differ per backend) -----------


def test_the_backend_is_a_setting_and_auto_is_directshow_on_windows():
    from station.capture.camera import resolve_backend

    assert resolve_backend("auto", "win32") == "dshow" and resolve_backend("", "win32") == "dshow"
    assert resolve_backend("auto", "linux") == "v4l2" and resolve_backend("auto", "darwin") == "any"
    assert resolve_backend("DirectShow") == "dshow" and resolve_backend("Media Foundation") == "msmf"
    with pytest.raises(ValueError, match="camera.backend setting"):
        resolve_backend("firewire")
    camera = open_source("0", camera=CameraSettings(backend="msmf"), capture_factory=lambda *_: RefusingCapture())
    assert camera.backend == "msmf"
    with camera:
        camera.read()
    assert "via Media Foundation" in camera.describe()


def test_msmf_opens_with_hardware_transforms_off_and_each_backend_by_its_own_api(monkeypatch):
    from station.capture import camera as camera_module

    opened: list[tuple] = []
    monkeypatch.setattr(camera_module.cv2, "VideoCapture", lambda *args: opened.append(args) or RefusingCapture())
    monkeypatch.delenv("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", raising=False)
    camera_module.open_opencv_capture(1, 5.0, 2.0, backend="msmf")
    assert opened[-1] == (1, cv2.CAP_MSMF)
    import os

    assert os.environ["OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS"] == "0"
    camera_module.open_opencv_capture(0, 5.0, 2.0, backend="dshow")
    assert opened[-1] == (0, cv2.CAP_DSHOW)
    monkeypatch.setattr(camera_module.sys, "platform", "win32")
    camera_module.open_opencv_capture(0, 5.0, 2.0)
    assert opened[-1] == (0, cv2.CAP_DSHOW)


def test_the_first_frame_deadline_starts_after_a_slow_open():
    class SlowStart(RefusingCapture):
        """Delivers its first frame on the third read, as a camera still starting does."""

        def read(self):
            self.count += 1
            return (self.count >= 3, np.zeros((480, 640, 3), np.uint8) if self.count >= 3 else None)

    def slow_open(*_):
        time.sleep(0.3)  # MSMF takes this long and more to open; longer than the whole deadline below
        return SlowStart()

    camera = open_source("0", open_timeout_s=0.1, read_timeout_s=0.1, capture_factory=slow_open)
    with camera:
        assert camera.read() is not None


def test_directshow_exposure_is_log2_seconds_without_an_auto_exposure_switch():
    capture = RefusingCapture()
    camera = open_source("0", camera=CameraSettings(backend="dshow", exposure=-6.0), capture_factory=lambda *_: capture)
    with camera:
        camera.read()
    assert capture.settings[cv2.CAP_PROP_EXPOSURE] == -6 and cv2.CAP_PROP_AUTO_EXPOSURE not in capture.settings
    assert not any("outside" in p for p in camera.problems)
    v4l2 = RefusingCapture()
    with open_source("0", camera=CameraSettings(backend="v4l2", exposure=100.0), capture_factory=lambda *_: v4l2):
        pass
    assert v4l2.settings[cv2.CAP_PROP_AUTO_EXPOSURE] == 1 and v4l2.settings[cv2.CAP_PROP_EXPOSURE] == 100
    # a V4L2 value (100 x 100 µs) given to DirectShow: said in its units, not silently sent
    wrong = open_source("0", camera=CameraSettings(backend="dshow", exposure=100.0), capture_factory=lambda *_: RefusingCapture())
    with wrong:
        pass
    assert any("log2 seconds, -13 (1/8192 s) to 0 (1 s)" in p for p in wrong.problems)
