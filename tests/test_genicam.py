"""GenICam through Aravis, against Aravis's simulated GigE Vision camera on 127.0.0.1.

The fake camera (``arv-fake-gv-camera-0.8`` from Debian's aravis-tools, installed with the
Aravis introspection data by scripts/install-system-deps.sh) is started by each test on
127.0.0.1 only and stopped after it. It listens on GigE Vision's fixed port, so a file lock keeps
two test workers from running one at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from station.capture import SourceReconnecting, open_source
from station.capture.base import CameraInfo
from station.capture.genicam import GenICamSource, GenICamUnavailable, Roi, genicam_to_rgb, load_aravis
from station.config import CameraSettings

FAKE_CAMERA = "arv-fake-gv-camera-0.8"
ARAVIS_TYPELIB = Path("/usr/lib/x86_64-linux-gnu/girepository-1.0/Aravis-0.8.typelib")
SERIAL = "ST01"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Aravis's fake camera is a Debian package")


def _require_aravis() -> None:
    """What CI installs is asserted; PyGObject is skipped only outside CI, where the venv may predate it."""
    assert shutil.which(FAKE_CAMERA), f"{FAKE_CAMERA} is missing (Debian aravis-tools, scripts/install-system-deps.sh)"
    assert ARAVIS_TYPELIB.is_file() or list(Path("/usr/lib").glob("*/girepository-1.0/Aravis-0.8.typelib")), (
        "Aravis's introspection data is missing (Debian gir1.2-aravis-0.8, scripts/install-system-deps.sh)"
    )
    try:
        load_aravis()
    except GenICamUnavailable as exc:  # the dev extra installs PyGObject (make install)
        raise AssertionError(f"PyGObject is not installed in this Python (pip install -e '.[dev]'): {exc}") from exc


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


class FakeCamera:
    """``arv-fake-gv-camera-0.8 -i 127.0.0.1``, which the test can unplug (kill) and plug in again."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.process: subprocess.Popen | None = None

    def plug_in(self) -> None:
        self.process = subprocess.Popen([FAKE_CAMERA, "-i", "127.0.0.1", "-s", self.serial],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._listed, 10, f"the fake camera {self.serial} to answer discovery")

    def unplug(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def _listed(self) -> bool:
        from station.capture.genicam import list_genicam_devices

        return any(d.serial == self.serial for d in list_genicam_devices())


@contextlib.contextmanager
def _gige_port_lock() -> Iterator[None]:
    with open(Path(tempfile.gettempdir()) / "station-fake-gige-camera.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def fake_camera() -> Iterator[FakeCamera]:
    _require_aravis()
    with _gige_port_lock():
        camera = FakeCamera(SERIAL)
        camera.plug_in()
        try:
            yield camera
        finally:
            camera.unplug()


# -- pixel formats (no camera) ---------------------------------------------------------------


def _mosaic_rggb(rgb: np.ndarray) -> np.ndarray:
    plane = np.empty(rgb.shape[:2], rgb.dtype)
    plane[0::2, 0::2], plane[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    plane[1::2, 0::2], plane[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    return plane


def test_pixel_formats_become_rgb_uint8():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(genicam_to_rgb(gray.tobytes(), 4, 3, "Mono8"), np.dstack([gray] * 3))
    twelve_bit = np.full((3, 4), 0x0FF0, "<u2")  # Mono12 unpacked: 12 bits in little-endian uint16
    assert (genicam_to_rgb(twelve_bit.tobytes(), 4, 3, "Mono12") == 0xFF).all()
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[...] = (200, 100, 30)
    assert tuple(genicam_to_rgb(_mosaic_rggb(colour).tobytes(), 8, 8, "BayerRG8")[4, 4]) == (200, 100, 30)
    deep = _mosaic_rggb((colour.astype("<u2") << 4))  # BayerRG12
    assert tuple(genicam_to_rgb(deep.tobytes(), 8, 8, "BayerRG12")[4, 4]) == (200, 100, 30)
    assert tuple(genicam_to_rgb(colour[..., ::-1].tobytes(), 8, 8, "BGR8")[0, 0]) == (200, 100, 30)
    with pytest.raises(Exception, match="Mono12Packed is not supported"):
        genicam_to_rgb(b"\0" * 18, 4, 3, "Mono12Packed")


def test_regions_of_interest_are_written_like_x_geometry():
    assert Roi.parse("640x480+64+32") == Roi(640, 480, 64, 32)
    assert Roi.parse("640x480") == Roi(640, 480, 0, 0)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        Roi.parse("640 by 480")


def test_genicam_specs_and_the_saved_settings_reach_the_genicam_source():
    saved = CameraSettings(width=1280, height=960, fps=50.0, exposure=2500.0, gain=3.0, roi="320x240+8+4",
                           pixel_format="Mono8", trigger="software", white_balance=[1.1, 1.4])
    source = open_source("genicam:Aravis-Fake-GV01", camera=saved)
    assert isinstance(source, GenICamSource) and source.camera_id == "Aravis-Fake-GV01"
    wanted = source.requested
    assert wanted.roi == Roi(320, 240, 8, 4) and wanted.exposure_us == 2500 and wanted.gain == 3
    assert wanted.fps == 50 and wanted.pixel_format == "Mono8" and wanted.trigger == "software"
    assert wanted.white_balance == (1.1, 1.4)
    assert open_source("genicam").camera_id == ""


# -- the fake camera -----------------------------------------------------------------------------


def test_settings_are_applied_read_back_and_100_frames_grabbed(fake_camera):
    camera = open_source(f"genicam:{SERIAL}", exposure=2000.0, gain=4.0, roi="640x480+64+32", fps=200.0,
                         pixel_format="BayerRG8", white_balance=[1.2, 1.5], stall_timeout_s=1.0)
    with camera:
        frames = [camera.read() for _ in range(100)]
        actual = camera.actual
    assert actual.roi == Roi(640, 480, 64, 32) and actual.pixel_format == "BayerRG8"
    assert actual.exposure_us == 2000 and actual.gain == 4 and actual.fps == 200
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.frame_id for f in frames] == list(range(100))
    assert camera.device.model == "Fake" and camera.device.serial == SERIAL
    assert frames[-1].camera == CameraInfo(spec=f"genicam:Aravis-Fake-{SERIAL}", model="Aravis Fake", serial=SERIAL,
                                           exposure=2000.0, exposure_unit="µs", gain=4.0)  # on the capture's record
    assert "640x480+64+32 BayerRG8 @ 200 fps exposure 2000 µs gain 4 via Aravis" in camera.describe()
    # the fake camera has no white balance: said once, with what the camera has
    assert [p for p in camera.problems if "white balance" in p] == [
        f"GenICam Aravis Fake ({SERIAL}) has no white balance (BalanceRatio)"]


def test_out_of_range_settings_are_reported_with_the_value_used(fake_camera):
    camera = GenICamSource(SERIAL, roi="4000x480+0+0", exposure=5.0, pixel_format="Mono12", stall_timeout_s=1.0)
    with camera:
        assert camera.read().image.shape == (480, 2048, 3)
    problems = " | ".join(camera.problems)
    assert "cannot take the region 4000x480+0+0 (sensor 2048x2048); using 2048x480+0+0" in problems
    assert "cannot take exposure 5 µs (range 10 to 1e+07 µs); using 10" in problems
    assert "has no pixel format Mono12 (it offers BayerBG8" in problems
    assert camera.actual.exposure_us == 10


def test_software_trigger_gives_one_frame_per_read(fake_camera):
    camera = GenICamSource(SERIAL, roi="320x240", pixel_format="Mono16", trigger="software", stall_timeout_s=2.0)
    with camera:
        frames = [camera.read() for _ in range(5)]
    assert camera.actual.trigger == "software" and camera.nominal_fps is None
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert "software trigger" in camera.describe() and not camera.problems


def test_an_unplugged_camera_reconnects_and_frames_resume_within_5_s(fake_camera):
    camera = GenICamSource(SERIAL, roi="320x240", fps=100.0, stall_timeout_s=0.5)  # the default backoff: 0.25 s to 1 s
    with camera:
        for _ in range(10):
            camera.read()
        fake_camera.unplug()
        with pytest.raises(SourceReconnecting) as lost:
            camera.read()
        assert camera.state == "reconnecting" and lost.value.retry_in_s <= 1.0
        assert "no frame for 0.5 s" in str(lost.value)
        fake_camera.plug_in()
        plugged_in = time.monotonic()

        def next_frame():
            try:
                return camera.read()
            except SourceReconnecting as waiting:
                time.sleep(min(waiting.retry_in_s, 0.2))  # the capture worker's interruptible wait
                return None

        frame = wait_for(next_frame, 5.0, "frames after the camera came back")
        recovered_s = time.monotonic() - plugged_in
        assert frame.image.shape == (240, 320, 3) and camera.state == "live" and camera.reconnects == 1
        assert not camera._abandoned  # the lost session was let go once the camera answered again
        assert camera.read() is not None
    assert recovered_s < 5.0
    assert any("no frame for 0.5 s; reconnecting" in p for p in camera.problems)
    assert any("is back after" in p for p in camera.problems)


def test_station_cameras_lists_the_fake_camera_with_its_spec(fake_camera):
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "station", "cameras", "--json"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    listing = json.loads(done.stdout)
    fake = [c for c in listing["genicam"] if c["serial"] == SERIAL]
    assert fake and fake[0]["spec"] == f"genicam:Aravis-Fake-{SERIAL}" and fake[0]["model"] == "Fake"
    text = subprocess.run([sys.executable, "-m", "station", "cameras"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert f"--source genicam:Aravis-Fake-{SERIAL}" in text.stdout and "Aravis Fake" in text.stdout


def test_the_gui_picker_lists_the_fake_camera_from_its_worker(qtbot, fake_camera):
    from station.ui.source_bar import SourceBar
    from station.ui.workers import CameraDiscoveryWorker, WorkerThread

    worker = CameraDiscoveryWorker()
    thread = WorkerThread(worker, "cameras")
    bar = SourceBar()
    qtbot.addWidget(bar)
    bar.refresh_requested.connect(worker.discover)  # queued into the worker's thread
    try:
        with qtbot.waitSignal(worker.found, timeout=30_000) as found:
            bar.refresh_button.click()
    finally:
        thread.stop()
    bar.set_cameras(found.args[0].choices())
    spec = f"genicam:Aravis-Fake-{SERIAL}"
    row = bar.picker.findData(spec)
    assert row > 0 and bar.picker.itemText(row) == f"Aravis Fake, serial {SERIAL} — {spec}"
    assert "127.0.0.1" in bar.picker.itemData(row, 3)


def test_v4l2_cameras_are_listed_by_their_stable_names(tmp_path):
    from station.capture.discovery import list_v4l2_devices

    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    for node, index, name in (("video0", "0", "HD Pro Webcam C920"), ("video1", "1", "HD Pro Webcam C920"),
                              ("video2", "0", "Microscope Cam")):
        (sysfs / node).mkdir(parents=True)
        (sysfs / node / "index").write_text(index + "\n")
        (sysfs / node / "name").write_text(name + "\n")
    (dev / "v4l" / "by-id").mkdir(parents=True)
    (dev / "v4l" / "by-path").mkdir(parents=True)
    (dev / "v4l" / "by-id" / "usb-046d_HD_Pro_Webcam_C920_1A2B-video-index0").symlink_to("../../video0")
    (dev / "v4l" / "by-path" / "pci-0000:00:14.0-usb-0:2:1.0-video-index0").symlink_to("../../video0")
    (dev / "v4l" / "by-path" / "pci-0000:00:14.0-usb-0:3:1.0-video-index0").symlink_to("../../video2")
    devices = list_v4l2_devices(sysfs, dev)
    assert [(d.name, d.spec, d.node) for d in devices] == [
        ("HD Pro Webcam C920", str(dev / "v4l/by-id/usb-046d_HD_Pro_Webcam_C920_1A2B-video-index0"), str(dev / "video0")),
        ("Microscope Cam", str(dev / "v4l/by-path/pci-0000:00:14.0-usb-0:3:1.0-video-index0"), str(dev / "video2")),
    ]
    assert open_source("/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_1A2B-video-index0").device.startswith("/dev/v4l")


def test_the_capture_worker_shows_a_lost_genicam_camera_and_resumes(qtbot, fake_camera):
    from PySide6.QtCore import QObject, Signal

    from station.ui.workers import CaptureWorker, WorkerThread

    class Starter(QObject):
        start = Signal(str)

    worker = CaptureWorker(CameraSettings(roi="320x240", fps=100.0, stall_timeout_s=0.5))
    thread = WorkerThread(worker, "capture-genicam-test")
    starter = Starter()
    starter.start.connect(worker.run_source)
    problems: list[str] = []
    worker.source_problem.connect(problems.append)
    try:
        with qtbot.waitSignal(worker.frame_available, timeout=10000):
            starter.start.emit(f"genicam:{SERIAL}")
        assert worker.mailbox.take().image.shape == (240, 320, 3)
        fake_camera.unplug()
        qtbot.waitUntil(lambda: sum("reconnecting for" in p for p in problems) >= 3, timeout=10000)
        # what the live image says is the backoff the source runs (docs/CAMERAS.md): 0.25 s doubling to 1 s
        waits = [p.split("next try in ")[1].split(" s")[0] for p in problems if "reconnecting for" in p]
        assert waits[:3] == ["0.25", "0.5", "1"], problems
        worker.mailbox.take()
        with qtbot.waitSignal(worker.frame_available, timeout=10000):  # connected before the camera is back
            fake_camera.plug_in()
        qtbot.waitUntil(lambda: any("is back after" in p for p in problems), timeout=5000)
        with qtbot.waitSignal(worker.source_finished, timeout=5000):
            worker.request_stop()
    finally:
        assert thread.stop()
