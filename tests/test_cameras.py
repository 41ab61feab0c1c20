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
