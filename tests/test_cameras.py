"""Cameras as a lab has them: saved settings reach the camera, listing, GenICam (Aravis), reconnecting."""

from __future__ import annotations

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
