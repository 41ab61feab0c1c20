"""``render_package``: one synthetic microscope image of an IC package, with exact defect boxes.

Determinism: ``seed`` feeds a ``SeedSequence`` split into three independent streams, for the
scene (package, placement, stage, light), the defects and the sensor noise. A render with
``defects=True`` therefore equals the one without except where defects were drawn, which is
how the tests check that every box covers a real change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from station.synth.defects import draw_defects
from station.synth.packages import MATERIALS, PACKAGE_TYPES, draw_package
from station.synth.scene import sample_optics, sensor, soft_shadow, stage_background

_QUARTER_TURNS = np.array([0.0, 90.0, 180.0, 270.0])
_QUARTER_TURN_WEIGHTS = np.array([0.4, 0.2, 0.2, 0.2])
_MIN_BOX_SIDE = 2.0  # px; a clipped box thinner than this is dropped


@dataclass
class SynthSample:
    image: np.ndarray  # [H, W, 3] RGB uint8
    material: str
    package_type: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # [N, 4] x1y1x2y2 px
    labels: list[str] = field(default_factory=list)  # one of DEFECT_CLASSES per box
    seed: int = 0


def render_package(
    seed: int,
    material: str | None = None,
    defects: bool = False,
    size: tuple[int, int] = (480, 640),
) -> SynthSample:
    """Render one package; ``size`` is (height, width) and ``material`` None picks one at random.

    Boxes are x1y1x2y2 in continuous pixel coordinates (pixel column i spans [i, i + 1)),
    clipped to the image; with ``defects=True`` a package may still have none (about 1 in 8).
    """
    if material is not None and material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; expected one of {', '.join(MATERIALS)}")
    height, width = int(size[0]), int(size[1])
    if height < 32 or width < 32:
        raise ValueError(f"image size {size} too small (at least 32x32)")
    scene_seed, defect_seed, noise_seed = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(scene_seed)
    material_pick = MATERIALS[int(rng.integers(len(MATERIALS)))]
    material = material or material_pick
    types = PACKAGE_TYPES[material]
    package_type = types[int(rng.integers(len(types)))]
    short_side = min(height, width)
    # Largest dimension, leads included; _placement shrinks it where the rotation would not fit.
    layer = draw_package(rng, material, package_type, rng.uniform(0.5, 0.92) * short_side)
    angle = float(rng.choice(_QUARTER_TURNS, p=_QUARTER_TURN_WEIGHTS) + rng.uniform(-30.0, 30.0))
    to_image, extent = _placement(rng, layer.alpha, angle, height, width)
    background = stage_background(rng, height, width)
    optics = sample_optics(rng, height, width)
    silhouette = layer.alpha.copy()  # the shadow ignores defects, so it is the same in both renders

    boxes = np.zeros((0, 4), np.float32)
    labels: list[str] = []
    if defects:
        drawn = draw_defects(np.random.default_rng(defect_seed), layer, short_side / 480.0)
        kept = [(d.label, _box(d.hull, to_image, width, height)) for d in drawn]
        kept = [(label, box) for label, box in kept if box is not None]
        labels = [label for label, _ in kept]
        if kept:
            boxes = np.stack([box for _, box in kept]).astype(np.float32)

    color = layer.color.astype(np.float32)
    if layer.lighting is not None:
        color += layer.lighting[:, :, None]
    # Composite only around the package: the shadow's reach beyond its bounding box.
    reach = int(np.ceil(np.hypot(*optics.shadow_offset) + 26))
    x0, y0 = max(0, int(extent[0]) - reach), max(0, int(extent[1]) - reach)
    x1, y1 = min(width, int(np.ceil(extent[2])) + reach), min(height, int(np.ceil(extent[3])) + reach)
    to_roi = to_image.copy()
    to_roi[:, 2] -= (x0, y0)
    roi_size = (x1 - x0, y1 - y0)
    image = background
    roi = image[y0:y1, x0:x1]
    shadow = soft_shadow(silhouette, to_roi, optics, roi_size[1], roi_size[0])
    roi *= (1.0 - optics.shadow_strength * shadow)[:, :, None]
    package = cv2.warpAffine(color, to_roi, roi_size, flags=cv2.INTER_LINEAR)
    coverage = cv2.warpAffine(layer.alpha, to_roi, roi_size, flags=cv2.INTER_LINEAR)
    roi += (package - roi) * (coverage.astype(np.float32) * np.float32(1.0 / 255.0))[:, :, None]
    image *= optics.gain
    pixels = sensor(image, optics, np.random.default_rng(noise_seed))
    return SynthSample(pixels, material, package_type, boxes, labels, int(seed))


def _placement(
    rng: np.random.Generator, alpha: np.ndarray, angle: float, height: int, width: int
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The [2, 3] affine from layer to image (rotate about the layer centre, shrink if it would
    not fit, move to a random place in view) and the package's image bounding box x0, y0, x1, y1."""
    size = alpha.shape[0]
    center = (size / 2.0, size / 2.0)
    x, y, w, h = cv2.boundingRect(alpha)
    corners = np.array([[x, y, 1.0], [x + w, y, 1.0], [x + w, y + h, 1.0], [x, y + h, 1.0]]) - [0.5, 0.5, 0.0]
    margin = 4.0
    spans = np.ptp(corners @ cv2.getRotationMatrix2D(center, angle, 1.0).T, axis=0)
    scale = min(1.0, (width - 2 * margin) / spans[0], (height - 2 * margin) / spans[1])
    matrix = cv2.getRotationMatrix2D(center, angle, scale)
    rotated = corners @ matrix.T
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    tx_range = (margin - low[0], width - margin - high[0])
    ty_range = (margin - low[1], height - margin - high[1])
    tx = rng.uniform(*tx_range) if tx_range[0] < tx_range[1] else (width - low[0] - high[0]) / 2
    ty = rng.uniform(*ty_range) if ty_range[0] < ty_range[1] else (height - low[1] - high[1]) / 2
    matrix[:, 2] += (tx, ty)
    return matrix, (low[0] + tx, low[1] + ty, high[0] + tx, high[1] + ty)


def _box(hull: np.ndarray, to_image: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Image box of the layer pixels in ``hull`` (their centres), each pixel a unit square."""
    offsets = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    corners = (hull[:, None, :] + offsets[None]).reshape(-1, 2)
    mapped = corners @ to_image[:, :2].T + to_image[:, 2]
    # +0.5: OpenCV puts pixel centres on integers; boxes put pixel edges there. A further 0.5
    # covers what bilinear resampling spreads into neighbouring pixels.
    x1, y1 = mapped.min(axis=0) + 0.5 - 0.5
    x2, y2 = mapped.max(axis=0) + 0.5 + 0.5
    x1, x2 = float(np.clip(x1, 0, width)), float(np.clip(x2, 0, width))
    y1, y2 = float(np.clip(y1, 0, height)), float(np.clip(y2, 0, height))
    if x2 - x1 < _MIN_BOX_SIDE or y2 - y1 < _MIN_BOX_SIDE:
        return None
    return np.array([x1, y1, x2, y2], np.float32)
