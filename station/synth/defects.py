"""Micro defects drawn onto an upright package layer, each with the pixels it changed.

A defect's box is not guessed from its parameters: the layer is compared before and after
drawing it, and the changed pixels that are visible (covered by the package before or after)
become the defect's footprint. ``render_package`` maps the footprint through the same affine
transform as the layer, so boxes follow rotation exactly.

Sizes are in px at 480 px image height and scale with the image (``image_scale``); the
classes are those of the WBAM-FFEM paper's electronic-component defects (scratch, hole,
crack, pin bend) plus chipped edges, missing leads and contamination.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from station.synth.drawing import Color, disk, fill, luminance, polyline, shade
from station.synth.layer import Lead, PackageLayer, draw_lead

DEFECT_CLASSES: tuple[str, ...] = (
    "scratch",
    "crack",
    "void",
    "chipped_edge",
    "bent_lead",
    "missing_lead",
    "contamination",
)

LEAD_DEFECTS = ("bent_lead", "missing_lead")
_WEIGHTS = {
    "scratch": 1.3,
    "crack": 1.0,
    "void": 1.0,
    "chipped_edge": 0.9,
    "bent_lead": 0.9,
    "missing_lead": 0.7,
    "contamination": 1.1,
}
_COUNT_PROBABILITIES = np.array([0.12, 0.38, 0.28, 0.15, 0.07])  # 0..4 defects per package
_CONTAMINANTS: tuple[Color, ...] = (
    (206.0, 202.0, 192.0),  # dust, fibres
    (118.0, 82.0, 50.0),  # brown residue
    (208.0, 184.0, 98.0),  # flux
    (26.0, 23.0, 21.0),  # soot, dark particles
)


@dataclass(frozen=True)
class DrawnDefect:
    label: str
    hull: np.ndarray  # [K, 2] float64: convex hull of the changed pixels' centres (layer x, y)


@dataclass
class _Context:
    rng: np.random.Generator
    layer: PackageLayer
    scale: float  # image_scale: 1.0 at 480 px
    used_leads: set[int]


def draw_defects(rng: np.random.Generator, layer: PackageLayer, image_scale: float) -> list[DrawnDefect]:
    """Draw 0..4 random defects on ``layer`` (in place); returns those that changed visible pixels."""
    context = _Context(rng, layer, image_scale, set())
    count = int(rng.choice(len(_COUNT_PROBABILITIES), p=_COUNT_PROBABILITIES))
    drawn = []
    for _ in range(count):
        label = _pick_class(context)
        before_color, before_alpha = layer.color.copy(), layer.alpha.copy()
        _DRAWERS[label](context)
        hull = _changed_hull(before_color, before_alpha, layer.color, layer.alpha)
        if hull is not None:
            drawn.append(DrawnDefect(label, hull))
    return drawn


def _pick_class(context: _Context) -> str:
    free_leads = len(context.layer.leads) - len(context.used_leads)
    names = [name for name in DEFECT_CLASSES if name not in LEAD_DEFECTS or free_leads > 1]
    weights = np.array([_WEIGHTS[name] for name in names])
    return names[int(context.rng.choice(len(names), p=weights / weights.sum()))]


def _changed_hull(
    before_color: np.ndarray, before_alpha: np.ndarray, color: np.ndarray, alpha: np.ndarray
) -> np.ndarray | None:
    difference = cv2.absdiff(before_color, color)
    changed = difference[:, :, 0] | difference[:, :, 1] | difference[:, :, 2] | cv2.absdiff(before_alpha, alpha)
    changed[(before_alpha == 0) & (alpha == 0)] = 0  # drawn where nothing is visible
    points = cv2.findNonZero(changed)
    if points is None:
        return None
    return cv2.convexHull(points).reshape(-1, 2).astype(np.float64)


# -- helpers -------------------------------------------------------------------------------


def _surface_point(context: _Context, margin: float = 0.0) -> np.ndarray:
    x0, y0, x1, y1 = context.layer.surface
    margin = min(margin, (x1 - x0) / 2 - 1, (y1 - y0) / 2 - 1)
    return np.array([context.rng.uniform(x0 + margin, x1 - margin), context.rng.uniform(y0 + margin, y1 - margin)])


def _clip_to_surface(context: _Context, points: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = context.layer.surface
    return np.stack([np.clip(points[:, 0], x0, x1), np.clip(points[:, 1], y0, y1)], axis=1)


def _contrasting(context: _Context, light_offset: tuple[float, float], dark_factor: tuple[float, float]) -> Color:
    """Lighter than a dark body, darker than a light one: how a defect shows under top light."""
    body = context.layer.body_color
    rng = context.rng
    if luminance(body) < 110 or (luminance(body) < 170 and rng.random() < 0.5):
        return shade(body, 1.0, rng.uniform(*light_offset))
    return shade(body, rng.uniform(*dark_factor))


def _thickness(context: _Context) -> int:
    return 1 if context.scale < 1.4 else int(context.rng.integers(1, 3))


# -- the defects -----------------------------------------------------------------------------


def _scratch(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    x0, y0, x1, y1 = layer.surface
    length = max(10 * context.scale, min(x1 - x0, y1 - y0) * rng.uniform(0.15, 0.5))
    start = _surface_point(context)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    bow = rng.uniform(-0.12, 0.12) * length
    t = np.linspace(0.0, 1.0, 8)[:, None]
    normal = np.array([-direction[1], direction[0]])
    points = start + direction * (t * length) + normal * (4 * bow * t * (1 - t))
    points = _clip_to_surface(context, points)
    color = _contrasting(context, (45, 95), (0.4, 0.62))
    polyline(layer.color, points, color, _thickness(context))


def _crack(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    color = _contrasting(context, (35, 70), (0.22, 0.42))
    start = _surface_point(context)
    heading = rng.uniform(0, 2 * np.pi)
    trunk = _random_walk(context, start, heading, int(rng.integers(5, 11)))
    polyline(layer.color, trunk, color, _thickness(context))
    for _ in range(int(rng.integers(0, 3))):
        fork = trunk[int(rng.integers(1, len(trunk)))]
        branch_heading = heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        branch = _random_walk(context, fork, branch_heading, int(rng.integers(2, 5)))
        polyline(layer.color, branch, color, 1)


def _random_walk(context: _Context, start: np.ndarray, heading: float, steps: int) -> np.ndarray:
    rng = context.rng
    points = [start]
    for _ in range(steps):
        heading += rng.normal(0, 0.5)
        step = rng.uniform(3, 9) * context.scale
        points.append(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
    return _clip_to_surface(context, np.array(points))


def _void(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    radius = rng.uniform(1.8, 5.5) * context.scale
    center = _surface_point(context, margin=radius + 1)
    body = layer.body_color
    dark_body = luminance(body) < 110
    core = (6.0, 6.0, 6.0) if dark_body else shade(body, rng.uniform(0.15, 0.35))
    disk(layer.color, tuple(center), radius, core)
    light = rng.uniform(0, 360)
    rim = shade(body, 1.0, rng.uniform(50, 90)) if dark_body else shade(body, 1.05, 20)
    angles = np.radians(np.linspace(light - 60, light + 60, 12))
    arc = np.stack([center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)], axis=1)
    polyline(layer.color, arc, rim, 1)


def _contamination(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    body_luma = luminance(layer.body_color)
    candidates = [_CONTAMINANTS[i] for i in rng.choice(len(_CONTAMINANTS), 2, replace=False)]
    color = max(candidates, key=lambda c: abs(luminance(c) - body_luma))
    if rng.random() < 0.3:  # a fibre
        length = rng.uniform(12, 40) * context.scale
        start = _surface_point(context)
        heading = rng.uniform(0, 2 * np.pi)
        headings = heading + np.cumsum(rng.normal(0, 0.25, 10))
        steps = np.stack([np.cos(headings), np.sin(headings)], axis=1) * (length / 10)
        points = _clip_to_surface(context, start + np.cumsum(steps, axis=0))
        polyline(layer.color, points, color, 1)
        return
    center = _surface_point(context, margin=6 * context.scale)
    for _ in range(int(rng.integers(1, 6))):
        offset = rng.normal(0, 2.5 * context.scale, 2)
        rx, ry = rng.uniform(1.5, 5.0, 2) * context.scale
        blob = center + offset
        cv2.ellipse(
            layer.color,
            (int(round(blob[0] * 16)), int(round(blob[1] * 16))),
            (max(16, int(rx * 16)), max(16, int(ry * 16))),
            float(rng.uniform(0, 180)),
            0,
            360,
            tuple(float(c) for c in shade(color, rng.uniform(0.85, 1.1))),
            -1,
            cv2.LINE_AA,
            4,
        )


def _chipped_edge(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    outline = layer.body
    edges = np.roll(outline, -1, axis=0) - outline
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    index = int(rng.choice(len(outline), p=lengths / lengths.sum()))
    point = outline[index] + edges[index] * rng.uniform(0.1, 0.9)
    centroid = outline.mean(axis=0)
    outward = np.array([edges[index][1], -edges[index][0]]) / max(lengths[index], 1e-6)
    if np.dot(outward, point - centroid) < 0:
        outward = -outward
    radius = rng.uniform(4, 12) * context.scale
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = radius * rng.uniform(0.55, 1.0, 9)
    chip = point + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
    fill(layer.color, chip, shade(layer.fracture_color, rng.uniform(0.9, 1.05)))
    # The missing piece: background shows through, ringed by the lighter fracture surface.
    notch = point + outward * radius * 0.2 + (chip - point) * 0.8
    fill(layer.color, notch, 0)
    fill(layer.alpha, notch, 0)


def _pick_lead(context: _Context) -> tuple[int, Lead]:
    free = [i for i in range(len(context.layer.leads)) if i not in context.used_leads]
    index = free[int(context.rng.integers(len(free)))]
    context.used_leads.add(index)
    return index, context.layer.leads[index]


def _erase_lead(layer: PackageLayer, lead: Lead) -> None:
    widened = Lead(lead.root + lead.direction * 0.6, lead.direction, lead.length + 1.0, lead.width + 2.0, lead.color,
                   lead.style)
    polygon = widened.polygon()
    fill(layer.color, polygon, 0)
    fill(layer.alpha, polygon, 0)


def _bent_lead(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    _, lead = _pick_lead(context)
    _erase_lead(layer, lead)
    angle = np.radians(rng.uniform(12, 35)) * rng.choice([-1, 1])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    draw_lead(layer.color, layer.alpha, lead, direction=rotation @ lead.direction, under_body=0.0)


def _missing_lead(context: _Context) -> None:
    rng, layer = context.rng, context.layer
    _, lead = _pick_lead(context)
    _erase_lead(layer, lead)
    if rng.random() < 0.4:  # broken off: a stub remains
        length = lead.length * rng.uniform(0.15, 0.35)
        stub = Lead(lead.root, lead.direction, length, lead.width, lead.color, "straight")
        draw_lead(layer.color, layer.alpha, stub, under_body=0.0)


_DRAWERS: dict[str, Callable[[_Context], None]] = {
    "scratch": _scratch,
    "crack": _crack,
    "void": _void,
    "chipped_edge": _chipped_edge,
    "bent_lead": _bent_lead,
    "missing_lead": _missing_lead,
    "contamination": _contamination,
}
