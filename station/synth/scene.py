"""What surrounds the package: the stage (ESD mat or glass plate), light, optics and sensor.

Every function draws its random choices from the generator it is given; ``render_package``
hands the scene generator to those that shape the picture and a separate one to the sensor
noise, so that a render with defects differs from the one without only where defects are.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from station.synth.drawing import smooth_noise

# name -> (base RGB, per-channel jitter); mats as seen under a reflected-light microscope
STAGES: dict[str, tuple[tuple[float, float, float], float]] = {
    "blue mat": ((92.0, 118.0, 142.0), 18.0),
    "grey mat": ((120.0, 123.0, 126.0), 26.0),
    "green mat": ((84.0, 114.0, 96.0), 16.0),
    "glass stage": ((178.0, 181.0, 183.0), 24.0),
}
_STAGE_WEIGHTS = np.array([0.34, 0.24, 0.18, 0.24])


def stage_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """[H, W, 3] float32 RGB: a textured ESD mat (blue, grey, green) or the glass stage plate."""
    names = list(STAGES)
    name = names[int(rng.choice(len(names), p=_STAGE_WEIGHTS))]
    base, jitter = STAGES[name]
    color = np.clip(np.array(base) + rng.normal(0.0, 3.0, 3) + rng.normal(0.0, jitter / 2.0), 20, 235)
    # Mottling (a few cells across) and grain (a few px), summed on the grain's grid: one full-size resize.
    grain_scale = rng.uniform(2.0, 4.0)
    grain_cells = (max(2, int(height / grain_scale)), max(2, int(width / grain_scale)))
    mottle = smooth_noise(rng, grain_cells, (rng.integers(3, 7), rng.integers(4, 9))) * rng.uniform(3, 10)
    grain = rng.standard_normal(grain_cells, dtype=np.float32)
    grain *= rng.uniform(2, 7) if name != "glass stage" else rng.uniform(0.5, 2)
    luma = cv2.resize(mottle + grain, (width, height), interpolation=cv2.INTER_CUBIC)
    if name != "glass stage" and rng.random() < 0.45:
        luma += _conductive_grid(rng, height, width)
    return luma[:, :, None] + color.astype(np.float32)


def _conductive_grid(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The faint carbon-fibre grid of dissipative mats."""
    grid = np.zeros((height, width), np.float32)
    spacing = rng.uniform(0.08, 0.18) * min(height, width)
    strength = -rng.uniform(4, 10)
    offset = rng.uniform(0, spacing, 2)
    for x in np.arange(offset[0], width, spacing):
        cv2.line(grid, (int(x), 0), (int(x), height - 1), strength, 1, cv2.LINE_AA)
    for y in np.arange(offset[1], height, spacing):
        cv2.line(grid, (0, int(y)), (width - 1, int(y)), strength, 1, cv2.LINE_AA)
    return grid


@dataclass(frozen=True)
class Optics:
    """Per-image light and optics, drawn once so both renders of a seed share them."""

    gain: np.ndarray  # [H, W, 3] float32: illuminator hot spot, vignetting, tilt, white balance
    blur_sigma: float  # defocus, px (0 = sharp)
    noise_sigma: float  # sensor noise, grey levels
    shadow_offset: tuple[float, float]  # px
    shadow_strength: float  # 0..1


def sample_optics(rng: np.random.Generator, height: int, width: int) -> Optics:
    small_h, small_w = max(4, height // 16), max(4, width // 16)
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    xs = xs / (small_w - 1) - 0.5
    ys = ys / (small_h - 1) - 0.5
    hot_x, hot_y = rng.uniform(-0.2, 0.2, 2)
    radius2 = (xs - hot_x) ** 2 + (ys - hot_y) ** 2
    vignetting = rng.uniform(0.1, 0.6)
    angle = rng.uniform(0, 2 * np.pi)
    tilt = rng.uniform(0.0, 0.3) * (xs * np.cos(angle) + ys * np.sin(angle))
    exposure = rng.uniform(0.82, 1.15)
    # Warm halogen to cool LED illuminators.
    warmth = rng.normal(0.0, 0.03)
    white_balance = np.array([1.0 + warmth, 1.0, 1.0 - warmth]) * rng.normal(1.0, 0.012, 3)
    small_gain = (exposure * (1.0 - vignetting * radius2 + tilt))[:, :, None] * white_balance
    gain = cv2.resize(small_gain.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    blur_sigma = float(rng.choice([0.0, rng.uniform(0.5, 1.0), rng.uniform(1.0, 1.6)], p=[0.35, 0.45, 0.2]))
    noise_sigma = float(rng.uniform(1.0, 5.0))
    offset_angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(2, 9) * min(height, width) / 480
    return Optics(
        gain=gain,
        blur_sigma=blur_sigma,
        noise_sigma=noise_sigma,
        shadow_offset=(float(offset * np.cos(offset_angle)), float(offset * np.sin(offset_angle))),
        shadow_strength=float(rng.uniform(0.0, 0.45)),
    )


def soft_shadow(silhouette: np.ndarray, to_image: np.ndarray, optics: Optics, height: int, width: int) -> np.ndarray:
    """[H, W] float32 0..1: the package's blurred, offset silhouette, computed at quarter size."""
    factor = 0.25
    matrix = to_image.copy()
    matrix[:, 2] += optics.shadow_offset
    matrix *= factor
    small = cv2.warpAffine(silhouette, matrix, (max(1, int(width * factor)), max(1, int(height * factor))))
    small = cv2.GaussianBlur(small.astype(np.float32) * (1.0 / 255.0), (0, 0), 2.0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


# Standard normal quantiles of 256 equally likely bytes (+0.5 rounds the final cast): one
# table look-up per pixel instead of a Box-Muller draw, 10x cheaper and visually the same.
_GAUSSIAN_BYTES = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)


def sensor(image: np.ndarray, optics: Optics, noise_rng: np.random.Generator) -> np.ndarray:
    """Defocus, then sensor noise; float32 in (modified in place), RGB uint8 out."""
    if optics.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), optics.blur_sigma)
    height, width = image.shape[:2]
    raw = np.frombuffer(noise_rng.bytes(height * width * 3), np.uint8).reshape(height, width, 3)
    image += cv2.LUT(raw, _GAUSSIAN_BYTES * np.float32(optics.noise_sigma) + np.float32(0.5))
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)
