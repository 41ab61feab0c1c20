"""Objectives and their image scale: the stage-micrometer measurement, the settings (and the
old single ``um_per_px`` migrated), ``station objectives``, and the camera on each frame."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from station.capture.scale import ScaleError, measure_ruling


def ruling_image(pitch_px: float, angle_deg: float = 0.0, size=(600, 800), line_px: float = 3.0,
                 bright: bool = False, seed: int = 0) -> np.ndarray:
    """A stage micrometer as a camera sees it: lines every ``pitch_px`` tilted by ``angle_deg``,
    every 5th and 10th longer, on unevenly lit glass with sensor noise (RGB uint8)."""
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    turn = np.radians(angle_deg)
    across = xx * np.cos(turn) + yy * np.sin(turn) - 7.3
    along = -(xx - width / 2) * np.sin(turn) + (yy - height / 2) * np.cos(turn)
    index = np.round(across / pitch_px)
    line = np.clip(line_px / 2 + 0.5 - np.abs(across - index * pitch_px), 0, 1)
    half_length = np.where(index % 10 == 0, 0.35, np.where(index % 5 == 0, 0.25, 0.18)) * height
    line *= np.abs(along) < half_length
    glass = 190 + 30 * xx / width
    image = glass + (1 if bright else -1) * 140 * line + np.random.default_rng(seed).normal(0, 6, size)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.dstack([gray] * 3)


@pytest.mark.parametrize("pitch_px, angle_deg, bright", [
    (23.7, 0.0, False), (23.7, 3.0, False), (11.3, -7.0, False), (6.4, 0.5, True), (41.0, 1.5, False),
    (23.7, 88.0, False), (17.0, 30.0, True),
])
def test_the_ruling_pitch_is_measured_to_a_tenth_of_a_percent(pitch_px, angle_deg, bright):
    measured = measure_ruling(ruling_image(pitch_px, angle_deg, bright=bright))
    assert measured.pitch_px == pytest.approx(pitch_px, rel=1e-3)
    assert measured.lines >= 10
    assert measured.um_per_px(10.0) == pytest.approx(10.0 / pitch_px, rel=1e-3)


def test_an_image_without_a_ruling_is_refused_with_the_reason():
    noise = np.random.default_rng(1).normal(128, 20, (600, 800)).clip(0, 255).astype(np.uint8)
    with pytest.raises(ScaleError, match="no regular ruling"):
        measure_ruling(noise)
    with pytest.raises(ScaleError, match="blank"):
        measure_ruling(np.full((600, 800), 100, np.uint8))
    with pytest.raises(ScaleError, match="ruling"):  # two lines in the picture
        measure_ruling(ruling_image(200.0, size=(400, 600)))


def test_the_old_single_scale_becomes_the_default_objective(tmp_path):
    from station.config import SCHEMA_VERSION, Settings, load_settings, save_settings

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 1, "um_per_px": 1.25, "recipe": "x"}), encoding="utf-8")
    settings = load_settings(path)
    assert settings.objectives == {"default": 1.25} and settings.objective == "default"
    assert settings.um_per_px == 1.25
    save_settings(settings, path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["version"] == SCHEMA_VERSION and "um_per_px" not in saved and saved["objectives"] == {"default": 1.25}
    path.write_text(json.dumps({"version": 1, "um_per_px": None}), encoding="utf-8")
    assert load_settings(path).objectives == {} and load_settings(path).um_per_px is None
    fresh = Settings(objectives={"5x": None, "20x": 0.5}, objective="5x")
    assert fresh.um_per_px is None
    save_settings(fresh, path)  # an objective not calibrated yet is still one of the microscope's
    assert load_settings(path).objectives == {"5x": None, "20x": 0.5} and load_settings(path).objective == "5x"


def _station(*argv: str) -> int:
    from station.cli import main

    return main(["objectives", *argv])


def test_station_objectives_calibrates_from_a_micrometer_image_and_stores_the_scale(tmp_path, capsys):
    from station.config import load_settings

    image = tmp_path / "micrometer.png"
    cv2.imwrite(str(image), ruling_image(20.0, 2.0))
    assert _station("calibrate", "20x", str(image), "--pitch-um", "10") == 0
    assert "0.5 µm/px" in capsys.readouterr().out
    assert _station("set", "5x", "--um-per-px", "2.05") == 0
    settings = load_settings()
    assert settings.objectives["20x"] == pytest.approx(0.5, rel=1e-3) and settings.objectives["5x"] == 2.05
    assert settings.objective == "20x"  # the first one stored is in use until another is chosen
    assert _station("use", "5x") == 0 and load_settings().um_per_px == 2.05
    capsys.readouterr()
    assert _station("list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["in_use"] == "5x" and set(listed["objectives"]) == {"20x", "5x"}
    assert _station("use", "100x") == 1
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((400, 600), 90, np.uint8))
    assert _station("calibrate", "40x", str(blank), "--pitch-um", "10") == 1
    assert "blank" in capsys.readouterr().err and "40x" not in load_settings().objectives
    assert _station("remove", "5x") == 0 and load_settings().objective == ""


def test_every_camera_frame_names_its_camera_and_its_settings():
    from station.capture import open_source
    from station.capture.base import CameraInfo
    from station.config import CameraSettings

    from tests.test_cameras import RefusingCapture

    camera = open_source("0", camera=CameraSettings(source="0", exposure=100.0), capture_factory=lambda *_: RefusingCapture())
    with camera:
        frame = camera.read()
    assert frame.camera == CameraInfo(spec="0", exposure=156.0, exposure_unit=frame.camera.exposure_unit)
    assert frame.camera.exposure_unit  # the backend's unit, never a bare number
    assert CameraInfo.from_dict(frame.camera.to_dict()) == frame.camera
    with open_source("demo", fps=1000.0) as demo:
        assert demo.read().camera.spec == "demo"
