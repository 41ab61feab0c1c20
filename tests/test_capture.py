"""Frame sources: image decoding, image folders, video files, cameras (scripted), open_source."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from station.capture import (
    CameraSource,
    FrameReadError,
    ImageFolderSource,
    ImageReadError,
    SimulatedMicroscope,
    SourceError,
    SourceReconnecting,
    VideoFileSource,
    open_source,
    read_image,
    to_rgb_uint8,
)
from station.capture.camera import redact_url


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


# -- to_rgb_uint8 / read_image -------------------------------------------------------------


def test_to_rgb_uint8_converts_depths_and_channels():
    gray16 = np.array([[0, 65535], [32768, 257]], np.uint16)
    out = to_rgb_uint8(gray16)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 1].tolist() == [255, 255, 255] and out[1, 1].tolist() == [1, 1, 1]
    assert to_rgb_uint8(np.full((2, 2), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]
    assert to_rgb_uint8(np.array([[True]]))[0, 0].tolist() == [255, 255, 255]
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)  # opaque red stays red
    rgba[0, 1] = (200, 10, 10, 0)  # transparent becomes white
    out = to_rgb_uint8(rgba)
    assert out[0, 0].tolist() == [200, 10, 10] and out[0, 1].tolist() == [255, 255, 255]
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert to_rgb_uint8(rgb) is rgb
    with pytest.raises(ValueError, match="shape"):
        to_rgb_uint8(np.zeros((2, 2, 5), np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_applies_exif_orientation_like_pillow(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.png"  # lossless, so the comparison can be exact
    image.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(read_image(path), expected)


def test_read_image_reports_why(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty \(0 bytes\)"):
        read_image(tmp_path / "empty.jpg")
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(ImageReadError, match="not an image") as info:
        read_image(tmp_path / "notes.png")
    assert info.value.path == tmp_path / "notes.png"
    ok, encoded = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    (tmp_path / "cut.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        read_image(tmp_path / "cut.jpg")


# -- image folder --------------------------------------------------------------------------


@pytest.fixture
def odd_folder(tmp_path) -> Path:
    folder = tmp_path / "odd"
    folder.mkdir()
    red = np.zeros((20, 30, 3), np.uint8)
    red[:, :, 0] = 220
    _write_rgb(folder / "img2.png", red)
    _write_rgb(folder / "img10.png", red)
    assert cv2.imwrite(str(folder / "deep16.png"), np.full((20, 30), 40000, np.uint16))
    assert cv2.imwrite(str(folder / "gray.png"), np.full((20, 30), 77, np.uint8))
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255  # BGRA: blue, the right half transparent
    rgba[:, :15, 3] = 255
    assert cv2.imwrite(str(folder / "alpha.png"), rgba)
    upright = Image.fromarray(np.zeros((20, 40, 3), np.uint8))  # 40 wide, 20 high
    exif = upright.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    upright.save(folder / "camera.jpg", exif=exif)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image at all")
    (folder / "notes.txt").write_text("operator notes")
    return folder


def test_folder_reads_every_image_and_reports_the_unreadable(odd_folder):
    frames, errors = {}, {}
    with ImageFolderSource(odd_folder) as source:
        names = [p.name for p in source.files]
        # natural order: img2 before img10; notes.txt is not an image by name
        assert names == ["alpha.png", "camera.jpg", "deep16.png", "gray.png", "img2.png", "img10.png",
                         "text.png", "zero.jpg"]
        while True:
            try:
                frame = source.read()
            except FrameReadError as exc:
                errors[exc.path.name] = str(exc)
                assert exc.frame_id == names.index(exc.path.name)
                continue
            if frame is None:
                break
            frames[Path(frame.source).name] = frame
        problems = list(source.problems)
    # never skipped: every image file is either a frame or an error, exactly once
    assert len(frames) + len(errors) == len(names)
    assert set(frames) | set(errors) == set(names)
    assert set(errors) == {"text.png", "zero.jpg"}
    assert "0 bytes" in errors["zero.jpg"] and "not an image" in errors["text.png"]
    for frame in frames.values():
        assert frame.image.dtype == np.uint8 and frame.image.ndim == 3 and frame.image.shape[2] == 3
    assert frames["camera.jpg"].image.shape == (40, 20, 3)  # EXIF rotation applied
    assert frames["deep16.png"].image[0, 0].tolist() == [156, 156, 156]  # 40000 / 257
    assert frames["gray.png"].image[0, 0].tolist() == [77, 77, 77]
    assert frames["alpha.png"].image[0, 0].tolist() == [0, 0, 255]  # opaque blue, RGB order
    assert frames["alpha.png"].image[0, 29].tolist() == [255, 255, 255]  # transparent -> white
    assert frames["img2.png"].image[0, 0].tolist() == [220, 0, 0]  # red stays red (no BGR mix-up)
    assert [f.frame_id for f in sorted(frames.values(), key=lambda f: f.frame_id)] == sorted(
        names.index(n) for n in frames
    )
    assert any("notes.txt" in p for p in problems)
    assert any("zero.jpg" in p for p in problems) and any("text.png" in p for p in problems)


def test_folder_errors(tmp_path, odd_folder):
    with pytest.raises(SourceError, match="before open"):
        ImageFolderSource(odd_folder).read()
    with pytest.raises(SourceError, match="no such folder"):
        ImageFolderSource(tmp_path / "nowhere").open()
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match="contains no images"):
        ImageFolderSource(tmp_path).open()


# -- video file ----------------------------------------------------------------------------


def _write_video(path: Path, count: int, fps: float) -> list[tuple[int, int, int]]:
    colors = [(30 + 20 * i, 200 - 15 * i, 60) for i in range(count)]  # RGB
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for color in colors:
        writer.write(np.full((48, 64, 3), color[::-1], np.uint8))  # VideoWriter takes BGR
    writer.release()
    return colors


def test_video_file_reads_every_frame_in_rgb(tmp_path):
    path = tmp_path / "clip.avi"
    colors = _write_video(path, 10, 12.0)
    with VideoFileSource(path, paced=False) as source:
        assert source.nominal_fps == pytest.approx(12.0)
        assert not source.is_live
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.read() is None
        assert "64x48 @ 12 fps" in source.describe()
    assert [f.frame_id for f in frames] == list(range(10))
    for frame, color in zip(frames, colors):
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert np.abs(frame.image[24, 32].astype(int) - color).max() <= 12  # MJPEG is lossy


def test_video_file_is_paced_at_its_frame_rate(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, 6, 20.0)
    with VideoFileSource(path) as source:
        started = time.monotonic()
        while source.read() is not None:
            pass
        elapsed = time.monotonic() - started
    assert elapsed >= 5 / 20.0 * 0.9  # 6 frames at 20 fps: at least 5 periods


def test_video_file_loops_when_asked(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, 3, 30.0)
    with VideoFileSource(path, paced=False, loop=True) as source:
        ids = [source.read().frame_id for _ in range(7)]
    assert ids == list(range(7))


def test_unreadable_video_is_reported(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("definitely not a video " * 50)
    with pytest.raises(SourceError, match="fake.mp4"):
        VideoFileSource(fake).open()
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        VideoFileSource(empty).open()
    with pytest.raises(SourceError, match="no such file"):
        VideoFileSource(tmp_path / "gone.mp4").open()


# -- camera ----------------------------------------------------------------------------------


def test_missing_camera_fails_fast_with_a_clear_message():
    started = time.monotonic()
    with pytest.raises(SourceError, match="No camera at index 99"):
        with open_source("99"):
            pass
    assert time.monotonic() - started < 10.0


class ScriptedCapture:
    """Stands in for cv2.VideoCapture: ``mode`` is "live", "frozen" or "dead"."""

    def __init__(self, mode: str, size: tuple[int, int] = (48, 64), fps: float = 15.0, opened: bool = True):
        self.mode, self.size, self.fps, self.opened = mode, size, fps, opened
        self.settings: dict[int, float] = {}
        self.count = 0
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        self.count += 1
        if self.mode == "dead" and self.count > 1:
            return False, None
        value = 0 if self.mode == "frozen" else self.count % 256
        return True, np.full((*self.size, 3), value, np.uint8)

    def set(self, prop: int, value: float) -> bool:
        self.settings[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


def _factory(*captures: ScriptedCapture):
    queue = list(captures)
    opened = []

    def factory(device, open_timeout_s, read_timeout_s):
        opened.append(queue.pop(0))
        return opened[-1]

    factory.opened = opened  # type: ignore[attr-defined]
    return factory


def test_camera_reads_back_and_reports_the_mode_it_got():
    factory = _factory(ScriptedCapture("live", size=(480, 640), fps=15.0))
    camera = CameraSource(0, width=1280, height=960, fps=30, capture_factory=factory)
    with camera:
        frame = camera.read()
        assert frame.image.shape == (480, 640, 3) and camera.is_live
        assert camera.describe() == "Camera 0 640x480 @ 15 fps via V4L2 (requested 1280x960 @ 30 fps)"
        assert camera.nominal_fps == 15.0
        settings = factory.opened[0].settings
        assert settings[cv2.CAP_PROP_FRAME_WIDTH] == 1280 and settings[cv2.CAP_PROP_FPS] == 30
    assert any("640x480 instead of the requested 1280x960" in p for p in camera.problems)
    assert any("15 fps instead of the requested 30" in p for p in camera.problems)
    assert factory.opened[0].released


def test_frozen_camera_is_reported_and_reconnected():
    factory = _factory(ScriptedCapture("frozen"), ScriptedCapture("live"))
    with CameraSource(0, stall_timeout_s=0.15, capture_factory=factory) as camera:
        ids = []
        deadline = time.monotonic() + 5.0
        while camera.reconnects == 0 and time.monotonic() < deadline:
            ids.append(camera.read().frame_id)
        assert camera.reconnects == 1
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert camera.read() is not None
    assert any("not changed" in p and "reconnecting" in p for p in camera.problems)
    assert factory.opened[0].released


def test_dead_camera_says_it_is_reconnecting_after_a_failed_reconnect():
    factory = _factory(ScriptedCapture("dead"), ScriptedCapture("live", opened=False))
    with CameraSource(2, stall_timeout_s=0.1, capture_factory=factory) as camera:
        camera.read()  # the frame read while opening
        with pytest.raises(SourceReconnecting, match="Camera 2 lost \\(no new frame.*attempt 1.*No camera at index 2") as lost:
            camera.read()
        assert camera.state == "reconnecting" and 0 < lost.value.retry_in_s <= camera.backoff.max_s
    assert any("no new frame" in p for p in camera.problems)


def test_stream_url_password_is_not_shown():
    camera = CameraSource("rtsp://operator:s3cret@10.0.0.7/stream1")
    assert "s3cret" not in camera.name and "s3cret" not in camera.describe()
    assert redact_url("http://host/path") == "http://host/path"


# -- simulated microscope and open_source --------------------------------------------------


def test_simulated_microscope_streams_live_looking_frames():
    with SimulatedMicroscope(seed=3, paced=False, seconds_per_package=3600) as demo:
        frames = [demo.read() for _ in range(5)]
        assert demo.current_sample is not None and demo.is_live
    assert [f.frame_id for f in frames] == list(range(5))
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.timestamp > 0 and f.source == "demo" for f in frames)
    assert not np.array_equal(frames[0].image, frames[1].image)  # noise and shake: never frozen
    # ...but the same package: the difference is small
    assert np.abs(frames[0].image.astype(int) - frames[1].image.astype(int)).mean() < 25


def test_simulated_microscope_changes_package_and_paces_itself():
    with SimulatedMicroscope(seed=4, width=160, height=120, paced=False, seconds_per_package=0.0) as demo:
        for _ in range(3):
            demo.read()
        assert demo.packages_shown >= 3
    with SimulatedMicroscope(seed=5, width=160, height=120, fps=20.0) as demo:
        started = time.monotonic()
        for _ in range(5):
            demo.read()
        assert time.monotonic() - started >= 4 / 20.0 * 0.9


def test_open_source_parses_specs(tmp_path, odd_folder):
    assert isinstance(open_source("demo"), SimulatedMicroscope)
    assert isinstance(open_source(" 1 "), CameraSource)
    assert open_source("1").device == 1
    assert isinstance(open_source("rtsp://10.0.0.7/stream"), CameraSource)
    assert isinstance(open_source(str(odd_folder)), ImageFolderSource)
    assert isinstance(open_source(str(odd_folder / "gray.png")), ImageFolderSource)
    video = tmp_path / "clip.avi"
    _write_video(video, 2, 10.0)
    assert isinstance(open_source(str(video)), VideoFileSource)
    # camera settings apply where they mean something and are ignored elsewhere
    camera = open_source("0", width=1280, height=960, fps=30.0, exposure=None, stall_timeout_s=2.0)
    assert camera.requested.width == 1280 and camera.stall_timeout_s == 2.0
    demo = open_source("demo", width=320, height=240, fps=25.0, stall_timeout_s=2.0)
    assert demo.size == (240, 320) and demo.nominal_fps == 25.0
    assert isinstance(open_source(str(odd_folder), width=1280, fps=30.0), ImageFolderSource)
    with pytest.raises(SourceError, match="No such file or folder: '.*nothing-here'"):
        open_source(str(tmp_path / "nothing-here"))
    with pytest.raises(TypeError, match="widht"):
        open_source("demo", widht=640)
