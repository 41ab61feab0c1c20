"""The image scale (µm per pixel) of a microscope objective, measured from a stage micrometer.

A stage micrometer is a slide with ruling lines at a known pitch (10 µm is common). Its image is
turned so that the lines run vertically (their direction from the image's structure tensor), the
rows are averaged into one profile across the lines, the profile's strongest period is found with
an FFT, and then refined: each line's centre is located near where that period puts it, and a
straight line fitted through the centres gives the pitch in pixels to a fraction of a percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from station.labels import scale_text

MIN_LINES = 5  # fewer ruling lines than this in the image give no trustworthy pitch
MAX_RESIDUAL = 0.1  # line centres further than this fraction of the pitch off a steady pitch: no ruling


class ScaleError(ValueError):
    """The image shows no ruling whose pitch can be measured; the message says why."""


@dataclass(frozen=True)
class Objective:
    """A microscope objective by name and its image scale (None: not calibrated)."""

    name: str
    um_per_px: float | None = None

    def text(self) -> str:
        """"20x · 0.512 µm/px" or "5x · not calibrated"."""
        return f"{self.name} · {scale_text(self.um_per_px)}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "um_per_px": self.um_per_px}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Objective:
        scale = data.get("um_per_px")
        return cls(str(data.get("name", "")), float(scale) if scale else None)


def objective_in_use(settings) -> Objective | None:
    """The objective ``settings`` (``station.config.Settings``) name as in use; None when none is."""
    name = settings.objective
    return Objective(name, settings.objectives.get(name)) if name in settings.objectives else None


@dataclass(frozen=True)
class RulingMeasurement:
    """What the micrometer image gave: the pitch in pixels, the lines' tilt, how many lines, and
    the spread of the line centres around the fitted pitch (px)."""

    pitch_px: float
    angle_deg: float
    lines: int
    residual_px: float

    def um_per_px(self, pitch_um: float) -> float:
        return pitch_um / self.pitch_px


def measure_ruling(image: np.ndarray) -> RulingMeasurement:
    """The pitch of the ruling lines in ``image`` (gray or RGB), in pixels."""
    gray = _gray(image)
    angle = _line_angle(gray)
    if abs(angle) > 45:  # lines across the image: a quarter turn first keeps the picture in the frame
        gray, angle = np.ascontiguousarray(np.rot90(gray)), _line_angle(np.rot90(gray))
    profile = _profile_across_lines(gray, angle)
    coarse = _dominant_period(profile)
    centres = _line_centres(profile, coarse)
    if len(centres) < MIN_LINES:
        raise ScaleError(f"only {len(centres)} ruling lines found (at least {MIN_LINES} are needed): "
                         "show more of the micrometer or use a lower magnification")
    index = np.round((centres - centres[0]) / coarse)
    slope, offset = np.polyfit(index, centres, 1)
    residual = float(np.sqrt(np.mean((centres - (slope * index + offset)) ** 2)))
    if residual > MAX_RESIDUAL * slope:
        raise ScaleError(f"no regular ruling found: the lines are {residual:.1f} px off a steady pitch of "
                         f"{slope:.1f} px (is this a stage micrometer, in focus?)")
    return RulingMeasurement(pitch_px=float(slope), angle_deg=angle, lines=len(centres), residual_px=residual)


def _gray(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3:
        array = cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2GRAY)
    if array.ndim != 2 or min(array.shape) < 32:
        raise ScaleError(f"not an image of a micrometer (shape {np.asarray(image).shape})")
    return array.astype(np.float32)


def _line_angle(gray: np.ndarray) -> float:
    """Degrees to turn the image by so that the lines are vertical (their gradient along x)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    if jxx + jyy <= 0:
        raise ScaleError("the image is blank: no ruling lines")
    return math.degrees(0.5 * math.atan2(2 * jxy, jxx - jyy))


def _profile_across_lines(gray: np.ndarray, angle_deg: float) -> np.ndarray:
    """The mean of each column once the lines are vertical, over the middle of the image (the
    turned corners hold no picture), without its slow trend (uneven lighting)."""
    height, width = gray.shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
    upright = cv2.warpAffine(gray, turn, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    margin_y, margin_x = int(height * 0.2), int(width * 0.1)
    profile = upright[margin_y:height - margin_y, margin_x:width - margin_x].mean(axis=0).astype(np.float64)
    trend = cv2.GaussianBlur(profile.reshape(1, -1), (0, 0), sigmaX=max(len(profile) / 20, 2)).ravel()
    return profile - trend


def _dominant_period(profile: np.ndarray) -> float:
    """The profile's strongest period (px), from a zero-padded FFT with a parabolic peak fit."""
    n = len(profile)
    padded = 8 * n
    spectrum = np.abs(np.fft.rfft(profile * np.hanning(n), padded))
    lowest = int(np.ceil(padded / (n / MIN_LINES)))  # periods longer than a fifth of the profile are not lines
    highest = padded // 3  # a line needs at least 3 px of period
    if highest <= lowest + 2:
        raise ScaleError("the image is too small to measure a ruling")
    peak = lowest + int(np.argmax(spectrum[lowest:highest]))
    left, centre, right = spectrum[peak - 1], spectrum[peak], spectrum[peak + 1]
    denominator = left - 2 * centre + right
    shift = 0.5 * (left - right) / denominator if denominator else 0.0
    return padded / (peak + shift)


def _line_centres(profile: np.ndarray, period: float) -> np.ndarray:
    """Sub-pixel centres of the lines (dark or bright, whichever stands out), one per period."""
    signal = -profile if abs(profile.min()) > abs(profile.max()) else profile
    signal = np.clip(signal, 0, None)
    half = max(int(period / 3), 1)
    position = float(np.argmax(signal[: int(math.ceil(period)) + 1]))
    centres = []
    while position < len(signal):
        low, high = int(round(position)) - half, int(round(position)) + half + 1
        window = signal[max(low, 0):high]
        if low >= 0 and high <= len(signal) and window.sum() > 0:  # a line cut by the edge would be off-centre
            centre = low + float((window * np.arange(len(window))).sum() / window.sum())
            centres.append(centre)
            position = centre + period
        else:
            position += period
    return np.asarray(centres)
