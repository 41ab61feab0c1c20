"""Small drawing helpers on uint8 RGB layers (OpenCV anti-aliases only 8-bit images).

Points are float ``[N, 2]`` arrays (x, y) in pixel-centre coordinates; they are drawn with
4 fractional bits so that shapes keep sub-pixel placement.
"""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4
_SCALE = 1 << _SHIFT

Color = tuple[float, float, float]


def fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _SCALE).astype(np.int32).reshape(-1, 1, 2)


def fill(image: np.ndarray, points: np.ndarray, color: Color | float) -> None:
    cv2.fillPoly(image, [fixed(points)], _cv_color(color), cv2.LINE_AA, _SHIFT)


def polyline(image: np.ndarray, points: np.ndarray, color: Color | float, thickness: int, closed: bool = False) -> None:
    cv2.polylines(image, [fixed(points)], closed, _cv_color(color), max(1, int(thickness)), cv2.LINE_AA, _SHIFT)


def disk(image: np.ndarray, center: tuple[float, float], radius: float, color: Color | float) -> None:
    fill(image, ellipse_points(center, radius, radius), color)


def ring(
    image: np.ndarray, center: tuple[float, float], radius: float, color: Color | float, thickness: int
) -> None:
    polyline(image, ellipse_points(center, radius, radius), color, thickness, closed=True)


def arc(
    image: np.ndarray,
    center: tuple[float, float],
    radius: float,
    start_deg: float,
    end_deg: float,
    color: Color | float,
    thickness: int,
) -> None:
    angles = np.radians(np.linspace(start_deg, end_deg, 24))
    points = np.stack([center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)], axis=1)
    polyline(image, points, color, thickness)


def rect_points(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def rounded_rect_points(x0: float, y0: float, x1: float, y1: float, radius: float) -> np.ndarray:
    radius = max(0.0, min(radius, (x1 - x0) / 2, (y1 - y0) / 2))
    if radius < 0.5:
        return rect_points(x0, y0, x1, y1)
    quarter = np.radians(np.linspace(0, 90, 6))
    corners = [
        (x1 - radius, y1 - radius, 0.0),
        (x0 + radius, y1 - radius, 90.0),
        (x0 + radius, y0 + radius, 180.0),
        (x1 - radius, y0 + radius, 270.0),
    ]
    points = []
    for cx, cy, start in corners:
        angles = quarter + np.radians(start)
        points.append(np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1))
    return np.concatenate(points)


def chamfered_rect_points(x0: float, y0: float, x1: float, y1: float, chamfer: float) -> np.ndarray:
    """A rectangle with its top-left corner cut (pin-1 index of square packages)."""
    return np.array([[x0 + chamfer, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0 + chamfer]], np.float64)


def ellipse_points(center: tuple[float, float], rx: float, ry: float, count: int = 48) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    return np.stack([center[0] + rx * np.cos(angles), center[1] + ry * np.sin(angles)], axis=1)


def shade(color: Color, factor: float, offset: float = 0.0) -> Color:
    return tuple(min(255.0, max(0.0, float(c * factor + offset))) for c in color)  # type: ignore[return-value]


def mix(a: Color, b: Color, t: float) -> Color:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def luminance(color: Color) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise of ``shape`` varying over ``cells`` (rows, cols)."""
    rows, cols = max(2, int(cells[0])), max(2, int(cells[1]))
    coarse = rng.standard_normal((rows, cols), dtype=np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _cv_color(color: Color | float) -> tuple[float, ...] | float:
    if isinstance(color, (int, float, np.floating, np.integer)):
        return float(color)
    return tuple(float(c) for c in color)
