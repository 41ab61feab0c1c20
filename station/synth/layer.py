"""The package drawn upright on its own layer, before it is rotated into the scene.

Package drawers fill a :class:`PackageLayer` (colour, coverage and the geometry defects need:
body outline, the surface defects may sit on, each lead); defects then draw on the same layer,
so that they rotate with the package and their boxes follow the drawn pixels exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from station.synth.drawing import Color, fill, shade


@dataclass
class Lead:
    """One lead's visible part: from ``root`` on the body edge outward along ``direction``."""

    root: np.ndarray  # [2] x, y
    direction: np.ndarray  # [2] unit vector, outward
    length: float
    width: float
    color: Color
    style: str  # "gullwing" | "straight" | "dip"

    def polygon(self, direction: np.ndarray | None = None) -> np.ndarray:
        """[4, 2] corners: root side first, then the tip side."""
        d = self.direction if direction is None else direction
        normal = np.array([-d[1], d[0]]) * (self.width / 2)
        tip = self.root + d * self.length
        return np.array([self.root - normal, self.root + normal, tip + normal, tip - normal])


@dataclass
class PackageLayer:
    color: np.ndarray  # [h, w, 3] uint8 RGB
    alpha: np.ndarray  # [h, w] uint8 coverage
    body: np.ndarray  # [N, 2] body outline (convex), layer pixel coordinates
    surface: tuple[float, float, float, float]  # x0, y0, x1, y1: where surface defects may sit
    body_color: Color
    fracture_color: Color  # what a chipped edge exposes
    leads: list[Lead] = field(default_factory=list)
    lighting: np.ndarray | None = None  # [h, w] float32 added after defects: texture and highlights

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape[0], self.alpha.shape[1]


def new_layer(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((size, size, 3), np.uint8), np.zeros((size, size), np.uint8)


def draw_lead(
    color: np.ndarray,
    alpha: np.ndarray,
    lead: Lead,
    direction: np.ndarray | None = None,
    under_body: float = 3.0,
) -> None:
    """Draw ``lead`` (optionally swung to ``direction``).

    It starts ``under_body`` px inside the body so no gap shows once the body is drawn over
    it; a lead drawn after the body (a defect) uses 0.
    """
    d = lead.direction if direction is None else direction
    normal = np.array([-d[1], d[0]])
    root = lead.root - d * under_body

    def span(t0: float, t1: float, width: float) -> np.ndarray:
        start = lead.root + d * (lead.length * t0) if t0 > 0 else root
        end = lead.root + d * (lead.length * t1)
        half = normal * (width / 2)
        return np.array([start - half, start + half, end + half, end - half])

    def segment(t0: float, t1: float, width: float, col: Color) -> None:
        fill(color, span(t0, t1, width), col)

    w, c = lead.width, lead.color
    if lead.style == "gullwing":
        segment(0.0, 0.38, w, shade(c, 0.72))  # shoulder, sloping away from the light
        segment(0.38, 0.52, w, shade(c, 1.18, 12))  # the bend catches the light
        segment(0.52, 1.0, w, c)  # foot
        segment(0.6, 0.95, w * 0.3, shade(c, 1.08, 6))
        coverage = [span(0.0, 1.0, w)]
    elif lead.style == "dip":
        segment(0.0, 0.5, w, shade(c, 1.05, 4))  # wide shoulder
        segment(0.5, 1.0, w * 0.5, shade(c, 0.8))  # narrow pin going down
        coverage = [span(0.0, 0.5, w), span(0.5, 1.0, w * 0.5)]
    else:
        segment(0.0, 1.0, w, c)
        segment(0.05, 0.95, w * 0.35, shade(c, 1.12, 8))
        coverage = [span(0.0, 1.0, w)]
    for polygon in coverage:
        fill(alpha, polygon, 255)
