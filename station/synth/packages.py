"""Procedural top views of IC packages, as an industrial microscope shows them.

The visual cues follow the CTI paper's introduction (cti-ic-packaging-material.txt): plastic
and metal packages have longer and fewer pins, metal and plastic ones laser-marked
identifiers, ceramic packages shorter and denser pins. Concretely:

* plastic: matte black epoxy, laser-etched (sometimes ink) marking, pin-1 dimple or notch,
  ejector-pin marks, tinned gull-wing or DIP leads (SOIC, TSOP, DIP, QFP);
* ceramic: white, beige or brown alumina (now and then dark), gold lid and seal ring or
  glass-sealed CERDIP, short dense gold or tinned leads, or castellations (CERDIP, LCC, CQFP);
* metallic: round TO-can or rectangular flatpack/hybrid in nickel or gold plating, brushed
  and specular, with a seam-welded lid and laser marking.

Colours, lighting and blur overlap between materials on purpose (dark ceramic, silver
ceramic lids, gold leads on plastic), so that material is a judgement of several cues.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from station.synth.drawing import (
    Color,
    arc,
    chamfered_rect_points,
    disk,
    ellipse_points,
    fill,
    luminance,
    mix,
    polyline,
    rect_points,
    ring,
    rounded_rect_points,
    shade,
    smooth_noise,
)
from station.synth.layer import Lead, PackageLayer, draw_lead, new_layer

MATERIALS: tuple[str, ...] = ("plastic", "ceramic", "metallic")

PACKAGE_TYPES: dict[str, tuple[str, ...]] = {
    "plastic": ("SOIC", "TSOP", "DIP", "QFP"),
    "ceramic": ("CERDIP", "LCC", "CQFP"),
    "metallic": ("TO-can", "flatpack", "hybrid"),
}

# side -> (outward direction, the coordinate (0 = x, 1 = y) the side fixes)
SIDES = {
    "top": (np.array([0.0, -1.0]), 1),
    "bottom": (np.array([0.0, 1.0]), 1),
    "left": (np.array([-1.0, 0.0]), 0),
    "right": (np.array([1.0, 0.0]), 0),
}

_COUNTRIES = ("MALAYSIA", "PHILIPPINES", "KOREA", "TAIWAN", "CHINA", "USA", "JAPAN", "THAILAND", "MEXICO")
_PREFIXES = ("LM", "TL", "NE", "MAX", "AD", "OP", "SN74", "74HC", "CD4", "UA", "MC", "LT", "TPS", "AT", "PIC",
             "STM", "XC", "IR", "DS", "ADM", "ICL", "HI", "AM", "HM", "IS")
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL)

GOLDS: tuple[Color, ...] = ((214.0, 174.0, 84.0), (226.0, 190.0, 104.0), (200.0, 160.0, 74.0), (222.0, 182.0, 120.0))
TIN: Color = (186.0, 186.0, 182.0)
NICKEL: Color = (178.0, 182.0, 186.0)


# -- marking -----------------------------------------------------------------------------


def marking_lines(rng: np.random.Generator, military: bool) -> list[str]:
    """Part number, date/lot code, maybe an origin line: what is printed on real parts."""
    prefix = _PREFIXES[rng.integers(len(_PREFIXES))]
    digits = "".join(rng.choice(list(string.digits), rng.integers(2, 5)))
    suffix = "".join(rng.choice(list("ABCDEFJLMNPSTX"), rng.integers(0, 3)))
    part = f"{prefix}{digits}{suffix}"
    if military:
        part += rng.choice(["/883", "/883B", "MJ", "/BCA"])
    year = int(rng.integers(0, 100))
    week = int(rng.integers(1, 53))
    lot = "".join(rng.choice(list(string.ascii_uppercase + string.digits), rng.integers(2, 5)))
    lines = [part, f"{year:02d}{week:02d} {lot}"]
    if rng.random() < 0.35:
        lines.append(_COUNTRIES[rng.integers(len(_COUNTRIES))])
    elif military and rng.random() < 0.6:
        lines.insert(0, f"5962-{rng.integers(10**6, 10**7)}")
    return lines


def draw_marking(
    color: np.ndarray,
    rng: np.random.Generator,
    area: tuple[float, float, float, float],
    lines: list[str],
    ink: Color,
    *,
    strength: float = 1.0,
) -> None:
    """Centre ``lines`` in ``area`` with a Hershey font; ``strength`` < 1 for shallow laser marks."""
    x0, y0, x1, y1 = area
    width, height = x1 - x0, y1 - y0
    if width < 12 or height < 8:
        return
    font = int(_FONTS[rng.integers(len(_FONTS))])
    sizes = [cv2.getTextSize(line, font, 1.0, 1)[0] for line in lines]
    widest = max(w for w, _ in sizes)
    line_height = max(h for _, h in sizes)
    scale = min(0.86 * width / widest, 0.8 * height / (len(lines) * line_height * 1.55))
    scale *= rng.uniform(0.75, 1.0)
    if scale * line_height < 4:  # unreadable at this size; real marks would be a smudge too
        lines, sizes = lines[:1], sizes[:1]
        scale = min(0.86 * width / sizes[0][0], 0.6 * height / line_height)
    thickness = 1 if scale < 0.9 or rng.random() < 0.5 else 2
    step = line_height * scale * 1.55
    top = y0 + (height - step * len(lines)) / 2 + line_height * scale
    roi_x0, roi_y0 = int(max(0, x0)), int(max(0, y0))
    roi_x1, roi_y1 = int(min(color.shape[1], x1 + 1)), int(min(color.shape[0], y1 + 1))
    mask = np.zeros((roi_y1 - roi_y0, roi_x1 - roi_x0), np.uint8)
    for index, (line, (line_width, _)) in enumerate(zip(lines, sizes)):
        x = x0 + (width - line_width * scale) / 2 - roi_x0
        y = top + index * step - roi_y0
        cv2.putText(mask, line, (int(round(x)), int(round(y))), font, scale, 255, thickness, cv2.LINE_AA)
    if rng.random() < 0.3:  # logo: a small ring or triangle before the text
        size = line_height * scale * 0.9
        cx, cy = x0 + width * 0.12 - roi_x0, top - line_height * scale / 2 - roi_y0
        if rng.random() < 0.5:
            cv2.circle(mask, (int(cx), int(cy)), max(2, int(size / 2)), 255, 1, cv2.LINE_AA)
        else:
            triangle = np.array([[cx, cy - size / 2], [cx + size / 2, cy + size / 2], [cx - size / 2, cy + size / 2]])
            fill(mask, triangle, 255)
    weight = mask.astype(np.float32)[:, :, None] * (strength / 255.0)
    roi = color[roi_y0:roi_y1, roi_x0:roi_x1].astype(np.float32)
    roi += (np.array(ink, np.float32) - roi) * weight
    color[roi_y0:roi_y1, roi_x0:roi_x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)


# -- shared pieces -------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadRow:
    side: str
    count: int
    pitch: float
    width: float
    length: float
    style: str


def place_leads(center: np.ndarray, body_w: float, body_h: float, rows: list[LeadRow], color: Color) -> list[Lead]:
    leads = []
    for row in rows:
        direction, axis = SIDES[row.side]
        half_body = (body_w / 2, body_h / 2)
        offsets = (np.arange(row.count) - (row.count - 1) / 2) * row.pitch
        for offset in offsets:
            root = center.copy()
            root[1 - axis] += offset
            root[axis] += half_body[axis] * direction[axis]
            leads.append(Lead(root, direction.copy(), row.length, row.width, color, row.style))
    return leads


def lead_color(rng: np.random.Generator, gold_probability: float) -> Color:
    if rng.random() < gold_probability:
        base = GOLDS[rng.integers(len(GOLDS))]
    else:
        base = shade(TIN, rng.uniform(0.75, 1.12))
    return jitter(rng, base, 6)


def jitter(rng: np.random.Generator, color: Color, amount: float) -> Color:
    return tuple(min(255.0, max(0.0, float(c + d))) for c, d in zip(color, rng.normal(0, amount, 3)))  # type: ignore


def specular(rng: np.random.Generator, size: int, strength: float, elongation: float = 1.0) -> np.ndarray:
    """[size, size] float32: a soft highlight blob, drawn small and enlarged (cheap)."""
    small = max(8, size // 8)
    field = np.zeros((small, small), np.float32)
    center = rng.uniform(0.25, 0.75, 2) * small
    axes = (max(1, int(small * rng.uniform(0.12, 0.3) * elongation)), max(1, int(small * rng.uniform(0.06, 0.16))))
    cv2.ellipse(field, (int(center[0]), int(center[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    field = cv2.GaussianBlur(field, (0, 0), small * 0.08)
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR) * strength


def grain(rng: np.random.Generator, size: int, amplitude: float, cell_px: float = 2.5) -> np.ndarray:
    return smooth_noise(rng, (size, size), (size / cell_px, size / cell_px)) * amplitude


def brushed(rng: np.random.Generator, size: int, amplitude: float, horizontal: bool) -> np.ndarray:
    """Anisotropic streaks of brushed or rolled metal."""
    cells = (size / 2.0, max(2.0, size / 40.0)) if horizontal else (max(2.0, size / 40.0), size / 2.0)
    return smooth_noise(rng, (size, size), cells) * amplitude


def concentric(rng: np.random.Generator, size: int, amplitude: float) -> np.ndarray:
    """Fine rings of a stamped or turned round cap, around the layer centre."""
    ys, xs = np.ogrid[0:size, 0:size]
    radius = np.hypot(xs - size / 2.0, ys - size / 2.0).astype(np.float32)
    profile = rng.standard_normal(size // 2 + 2).astype(np.float32)
    profile = np.convolve(profile, np.ones(2, np.float32) / 2, mode="same") * amplitude
    return np.interp(radius, np.arange(profile.size, dtype=np.float32), profile).astype(np.float32)


@dataclass
class Canvas:
    """Layer under construction: a square of ``size`` px with the package centred."""

    size: int
    color: np.ndarray
    alpha: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return np.array([self.size / 2.0, self.size / 2.0])


def _canvas(extent: float) -> Canvas:
    size = int(np.ceil(extent * 1.18 + 16))
    color, alpha = new_layer(size)
    return Canvas(size, color, alpha)


def _body(canvas: Canvas, outline: np.ndarray, color: Color) -> None:
    fill(canvas.color, outline, color)
    fill(canvas.alpha, outline, 255)


def _fit(extent_w: float, extent_h: float, target: float) -> float:
    """Pixels per unit so that the larger extent becomes ``target`` px."""
    return target / max(extent_w, extent_h)


# -- plastic -----------------------------------------------------------------------------


def _plastic_colors(rng: np.random.Generator) -> tuple[Color, Color, Color]:
    grey = rng.uniform(16, 48) if rng.random() < 0.85 else rng.uniform(48, 78)
    body = jitter(rng, (grey, grey, grey * rng.uniform(0.96, 1.04)), 1.5)
    if rng.random() < 0.8:  # laser-etched: lighter, matte, slightly warm
        level = rng.uniform(95, 165)
        ink = (level, level * 0.98, level * 0.94)
    else:  # ink printed
        ink = jitter(rng, (222.0, 222.0, 215.0), 10)
    fracture = shade(body, 1.0, rng.uniform(45, 80))
    return body, ink, fracture


def _plastic_body(
    rng: np.random.Generator, canvas: Canvas, body_w: float, body_h: float, body: Color, ink: Color, notch: bool
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    cx, cy = canvas.center
    x0, y0, x1, y1 = cx - body_w / 2, cy - body_h / 2, cx + body_w / 2, cy + body_h / 2
    outline = rect_points(x0, y0, x1, y1)
    _body(canvas, outline, shade(body, 1.0, rng.uniform(6, 20)))  # mould draft edge catches light
    inset = min(body_w, body_h) * rng.uniform(0.03, 0.07)
    top = rounded_rect_points(x0 + inset, y0 + inset, x1 - inset, y1 - inset, inset)
    fill(canvas.color, top, body)
    short = min(body_w, body_h)
    if notch:  # DIP: half-round notch in the middle of the left end
        radius = short * rng.uniform(0.1, 0.16)
        disk(canvas.color, (x0 + 1, cy), radius, shade(body, 0.75))
        arc(canvas.color, (x0 + 1, cy), radius, -80, 80, shade(body, 1.0, 25), 1)
    if not notch or rng.random() < 0.5:  # pin-1 dimple, a shallow polished cup
        radius = short * rng.uniform(0.06, 0.11)
        if notch:
            center = (x0 + inset + radius * 3, y1 - inset - radius * 1.8)
        else:
            center = (x0 + inset + radius * 1.8, y0 + inset + radius * 1.8)
        disk(canvas.color, center, radius, shade(body, 0.82, 4))
        arc(canvas.color, center, radius, 200, 340, shade(body, 1.0, 30), 1)
    for _ in range(rng.integers(0, 3)):  # ejector-pin marks: faint, larger circles
        radius = short * rng.uniform(0.1, 0.17)
        mark_x = rng.uniform(x0 + radius + inset, x1 - radius - inset)
        center = (mark_x, rng.uniform(y0 + radius + inset, y1 - radius - inset))
        ring(canvas.color, center, radius, shade(body, 1.0, rng.choice([-5.0, 6.0])), 1)
    area = (x0 + short * 0.22, y0 + short * 0.18, x1 - short * 0.12, y1 - short * 0.18)
    lines = marking_lines(rng, military=rng.random() < 0.1)
    draw_marking(canvas.color, rng, area, lines, ink, strength=rng.uniform(0.75, 1.0))
    surface = (x0 + inset, y0 + inset, x1 - inset, y1 - inset)
    return outline, surface


def _plastic(rng: np.random.Generator, package_type: str, extent: float) -> PackageLayer:
    body_color, ink, fracture = _plastic_colors(rng)
    leads_color = lead_color(rng, gold_probability=0.12)
    if package_type == "SOIC":
        count = int(rng.integers(4, 9))
        body_w, body_h = count + rng.uniform(0.3, 0.9), rng.choice([3.0, 5.9]) * rng.uniform(0.95, 1.05)
        length, width = rng.uniform(0.75, 1.25), rng.uniform(0.35, 0.5)
        rows = [LeadRow(side, count, 1.0, width, length, "gullwing") for side in ("top", "bottom")]
        extent_w, extent_h = body_w, body_h + 2 * length
    elif package_type == "TSOP":
        count = int(rng.integers(10, 25))
        body_w, body_h = count + rng.uniform(0.5, 1.5), rng.uniform(9.0, 13.0)
        length, width = rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.5)
        rows = [LeadRow(side, count, 1.0, width, length, "gullwing") for side in ("top", "bottom")]
        extent_w, extent_h = body_w, body_h + 2 * length
    elif package_type == "DIP":
        count = int(rng.integers(4, 13))
        body_w, body_h = count + rng.uniform(0.2, 0.6), rng.choice([2.5, 5.4]) * rng.uniform(0.95, 1.05)
        length, width = rng.uniform(0.3, 0.55), rng.uniform(0.5, 0.65)
        rows = [LeadRow(side, count, 1.0, width, length, "dip") for side in ("top", "bottom")]
        extent_w, extent_h = body_w, body_h + 2 * length
    elif package_type == "QFP":
        count = int(rng.integers(8, 21))
        body_w = count + rng.uniform(1.5, 3.0)
        body_h = body_w * rng.choice([1.0, rng.uniform(0.75, 0.95)])
        count_v = max(6, int(round(count * body_h / body_w)))
        length, width = rng.uniform(1.6, 2.6), rng.uniform(0.38, 0.52)
        rows = [LeadRow(s, count, 1.0, width, length, "gullwing") for s in ("top", "bottom")]
        rows += [LeadRow(s, count_v, 1.0, width, length, "gullwing") for s in ("left", "right")]
        extent_w, extent_h = body_w + 2 * length, body_h + 2 * length
    else:
        raise ValueError(f"unknown plastic package type {package_type!r}")
    scale = _fit(extent_w, extent_h, extent)
    canvas = _canvas(max(extent_w, extent_h) * scale)
    rows = [LeadRow(r.side, r.count, r.pitch * scale, r.width * scale, r.length * scale, r.style) for r in rows]
    leads = place_leads(canvas.center, body_w * scale, body_h * scale, rows, leads_color)
    for lead in leads:
        draw_lead(canvas.color, canvas.alpha, lead)
    outline, surface = _plastic_body(
        rng, canvas, body_w * scale, body_h * scale, body_color, ink, notch=package_type == "DIP"
    )
    lighting = grain(rng, canvas.size, rng.uniform(1.5, 4.0)) + specular(rng, canvas.size, rng.uniform(0, 14))
    return PackageLayer(canvas.color, canvas.alpha, outline, surface, body_color, fracture, leads, lighting)


# -- ceramic -----------------------------------------------------------------------------

_CERAMICS: tuple[tuple[Color, float], ...] = (
    ((232.0, 230.0, 222.0), 0.28),  # white alumina
    ((218.0, 204.0, 170.0), 0.22),  # ivory / beige
    ((188.0, 152.0, 112.0), 0.18),  # light brown
    ((150.0, 112.0, 82.0), 0.12),  # tan brown
    ((96.0, 74.0, 60.0), 0.12),  # dark brown
    ((58.0, 55.0, 54.0), 0.08),  # black ceramic: looks like plastic at first glance
)


def _ceramic_colors(rng: np.random.Generator) -> tuple[Color, Color]:
    weights = np.array([w for _, w in _CERAMICS])
    base = _CERAMICS[int(rng.choice(len(_CERAMICS), p=weights / weights.sum()))][0]
    body = jitter(rng, shade(base, rng.uniform(0.9, 1.06)), 5)
    fracture = shade(mix(body, (240.0, 238.0, 232.0), 0.6), 1.0, 10)  # fresh fracture is lighter, whiter
    return body, fracture


def _gold_lid(
    rng: np.random.Generator, canvas: Canvas, x0: float, y0: float, x1: float, y1: float, lid: Color
) -> tuple[float, float, float, float]:
    """Seal ring, then the lid inside it; returns the lid rectangle."""
    ring_width = min(x1 - x0, y1 - y0) * rng.uniform(0.04, 0.08)
    radius = min(x1 - x0, y1 - y0) * rng.uniform(0.02, 0.12)
    fill(canvas.color, rounded_rect_points(x0, y0, x1, y1, radius), shade(lid, rng.uniform(0.78, 0.92)))
    lx0, ly0, lx1, ly1 = x0 + ring_width, y0 + ring_width, x1 - ring_width, y1 - ring_width
    fill(canvas.color, rounded_rect_points(lx0, ly0, lx1, ly1, radius * 0.8), lid)
    return lx0, ly0, lx1, ly1


def _ceramic(rng: np.random.Generator, package_type: str, extent: float) -> PackageLayer:
    body_color, fracture = _ceramic_colors(rng)
    dark_body = luminance(body_color) < 110
    lid = GOLDS[rng.integers(len(GOLDS))] if rng.random() < 0.72 else shade(NICKEL, rng.uniform(0.85, 1.1))
    lid = jitter(rng, lid, 5)
    if package_type == "CERDIP":
        count = int(rng.integers(7, 21))
        body_w, body_h = count + rng.uniform(0.3, 0.9), rng.choice([3.0, 6.0]) * rng.uniform(0.95, 1.05)
        rows = [LeadRow(s, count, 1.0, rng.uniform(0.45, 0.6), rng.uniform(0.2, 0.4), "dip") for s in ("top", "bottom")]
        extent_w, extent_h = body_w, body_h + 2 * rows[0].length
    elif package_type == "CQFP":
        count = int(rng.integers(12, 33))
        body_w = count + rng.uniform(2.0, 4.0)
        body_h = body_w * rng.uniform(0.9, 1.0)
        four_sides = rng.random() < 0.75
        length, width = rng.uniform(0.7, 1.4), rng.uniform(0.4, 0.55)
        sides = ("top", "bottom", "left", "right") if four_sides else ("top", "bottom")
        count_v = max(8, int(count * body_h / body_w))
        rows = [LeadRow(s, count if s in ("top", "bottom") else count_v, 1.0, width, length, "straight") for s in sides]
        extent_w = body_w + (2 * length if four_sides else 0)
        extent_h = body_h + 2 * length
    elif package_type == "LCC":
        count = int(rng.integers(5, 18))
        body_w = count + rng.uniform(1.6, 3.0)
        body_h = body_w * rng.uniform(0.85, 1.0)
        rows = []
        extent_w, extent_h = body_w, body_h
    else:
        raise ValueError(f"unknown ceramic package type {package_type!r}")
    scale = _fit(extent_w, extent_h, extent)
    canvas = _canvas(max(extent_w, extent_h) * scale)
    bw, bh = body_w * scale, body_h * scale
    cx, cy = canvas.center
    x0, y0, x1, y1 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
    leads_color = lead_color(rng, gold_probability=0.6)
    rows = [LeadRow(r.side, r.count, r.pitch * scale, r.width * scale, r.length * scale, r.style) for r in rows]
    leads = place_leads(canvas.center, bw, bh, rows, leads_color)
    for lead in leads:
        draw_lead(canvas.color, canvas.alpha, lead)
    short = min(bw, bh)
    chamfer = short * rng.uniform(0.05, 0.1) if package_type != "CERDIP" else 0.0
    outline = chamfered_rect_points(x0, y0, x1, y1, chamfer) if chamfer else rect_points(x0, y0, x1, y1)
    _body(canvas, outline, body_color)
    polyline(canvas.color, outline, shade(body_color, 0.8), 1, closed=True)
    ink = (245.0, 245.0, 240.0) if dark_body else jitter(rng, (40.0, 40.0, 44.0), 6)
    surface = (x0 + 2, y0 + 2, x1 - 2, y1 - 2)
    if package_type == "CERDIP":
        seal = shade(body_color, 0.9, -6) if rng.random() < 0.5 else jitter(rng, (92.0, 104.0, 96.0), 8)
        inset = short * rng.uniform(0.04, 0.08)
        polyline(canvas.color, rect_points(x0 + inset, y0 + inset, x1 - inset, y1 - inset), seal, 2, closed=True)
        area = (x0 + short * 0.15, y0 + short * 0.16, x1 - short * 0.1, y1 - short * 0.16)
        if rng.random() < 0.2:  # UV-erasable EPROM: quartz window over the die
            window = short * rng.uniform(0.28, 0.4)
            center = (cx - bw * 0.05, cy)
            disk(canvas.color, center, window, (38.0, 40.0, 46.0))
            die = window * 0.55
            die_outline = rect_points(center[0] - die, center[1] - die * 0.8, center[0] + die, center[1] + die * 0.8)
            fill(canvas.color, die_outline, jitter(rng, (150.0, 140.0, 120.0), 10))
            ring(canvas.color, center, window, (170.0, 172.0, 176.0), 1)
            area = (center[0] + window * 1.15, y0 + short * 0.16, x1 - short * 0.08, y1 - short * 0.16)
        else:
            disk(canvas.color, (x0 + short * 0.14, cy), short * 0.06, shade(body_color, 0.8))
        draw_marking(canvas.color, rng, area, marking_lines(rng, military=rng.random() < 0.5), ink)
    else:
        if package_type == "LCC":
            _castellations(rng, canvas, x0, y0, x1, y1, count, scale, leads_color, body_color)
        lid_size = rng.uniform(0.5, 0.75)
        lx0, ly0 = cx - bw * lid_size / 2, cy - bh * lid_size / 2
        lid_rect = _gold_lid(rng, canvas, lx0, ly0, lx0 + bw * lid_size, ly0 + bh * lid_size, lid)
        mark_ink = shade(lid, 0.45) if rng.random() < 0.7 else (240.0, 240.0, 236.0)
        lx0, ly0, lx1, ly1 = lid_rect
        draw_marking(canvas.color, rng, (lx0 + 3, ly0 + 3, lx1 - 3, ly1 - 3),
                     marking_lines(rng, military=rng.random() < 0.5), mark_ink, strength=rng.uniform(0.6, 0.95))
        if rng.random() < 0.6:  # gold index triangle in the chamfered corner
            size = short * 0.08
            fill(canvas.color, np.array([[x0 + chamfer + 3, y0 + 3], [x0 + chamfer + 3 + size, y0 + 3],
                                         [x0 + chamfer + 3, y0 + 3 + size]]), GOLDS[0])
    lighting = grain(rng, canvas.size, rng.uniform(1.0, 3.0), cell_px=1.8)
    lighting += specular(rng, canvas.size, rng.uniform(5, 35))
    return PackageLayer(canvas.color, canvas.alpha, outline, surface, body_color, fracture, leads, lighting)


def _castellations(
    rng: np.random.Generator, canvas: Canvas, x0: float, y0: float, x1: float, y1: float, count: int, pitch: float,
    gold: Color, body: Color,
) -> None:
    """LCC terminals: gold-plated half-holes in the edge, with pads running inward."""
    depth = pitch * rng.uniform(0.6, 1.1)
    width = pitch * rng.uniform(0.45, 0.6)
    hole = width * 0.35
    width_x, height_y = x1 - x0, y1 - y0
    for side in ("top", "bottom", "left", "right"):
        along = width_x if side in ("top", "bottom") else height_y
        n = max(3, int(count * along / max(width_x, height_y)))
        for k in range(n):
            offset = (k - (n - 1) / 2) * pitch
            if side in ("top", "bottom"):
                x = (x0 + x1) / 2 + offset
                edge = y0 if side == "top" else y1
                inner = edge + depth if side == "top" else edge - depth
                pad = rect_points(x - width / 2, min(edge, inner), x + width / 2, max(edge, inner))
                hole_center = (x, edge)
            else:
                y = (y0 + y1) / 2 + offset
                edge = x0 if side == "left" else x1
                inner = edge + depth if side == "left" else edge - depth
                pad = rect_points(min(edge, inner), y - width / 2, max(edge, inner), y + width / 2)
                hole_center = (edge, y)
            fill(canvas.color, pad, gold)
            disk(canvas.color, hole_center, hole, shade(gold, 0.55))


# -- metallic ----------------------------------------------------------------------------


def _metal_colors(rng: np.random.Generator) -> tuple[Color, Color]:
    if rng.random() < 0.3:
        metal = jitter(rng, GOLDS[rng.integers(len(GOLDS))], 6)
    else:
        metal = jitter(rng, shade(NICKEL, rng.uniform(0.78, 1.15)), 5)
    fracture = shade(metal, 1.1, 20)
    return metal, fracture


def _seam_weld(rng: np.random.Generator, canvas: Canvas, points: np.ndarray, metal: Color) -> None:
    """Seam-welded lid edge: a bead of overlapping weld spots along the outline."""
    polyline(canvas.color, points, shade(metal, 0.7), 3, closed=True)
    closed = np.vstack([points, points[:1]])
    step = rng.uniform(2.5, 4.5)
    bright, dark = shade(metal, 1.2, 15), shade(metal, 0.6)
    for start, end in zip(closed[:-1], closed[1:]):
        length = float(np.hypot(*(end - start)))
        for t in np.arange(0.0, length, step) / max(length, 1e-6):
            spot = start + (end - start) * t
            spot_color = bright if rng.random() < 0.5 else dark
            cv2.circle(canvas.color, (int(round(spot[0])), int(round(spot[1]))), 1, spot_color, -1, cv2.LINE_AA)


def _metallic(rng: np.random.Generator, package_type: str, extent: float) -> PackageLayer:
    metal, fracture = _metal_colors(rng)
    ink = shade(metal, rng.uniform(0.3, 0.55))  # laser marks on metal are dark
    if package_type == "TO-can":
        return _to_can(rng, extent, metal, fracture, ink)
    if package_type == "flatpack":
        count = int(rng.integers(5, 13))
        body_w, body_h = count + rng.uniform(0.8, 2.0), count * rng.uniform(0.55, 0.9) + 1
        four_sides = rng.random() < 0.25
        length, width = rng.uniform(2.5, 4.5), rng.uniform(0.35, 0.5)
        rows = [LeadRow(s, count, 1.0, width, length, "straight") for s in ("top", "bottom")]
        if four_sides:
            count_v = max(3, int(count * body_h / body_w))
            rows += [LeadRow(s, count_v, 1.0, width, length, "straight") for s in ("left", "right")]
        extent_w = body_w + (2 * length if four_sides else 0)
        extent_h = body_h + 2 * length
    elif package_type == "hybrid":
        count = int(rng.integers(3, 10))
        body_w, body_h = (count + 1.2) * 1.0, (count + 1.2) * rng.uniform(0.55, 0.85)
        length, width = rng.uniform(1.5, 3.5), rng.uniform(0.18, 0.28)
        rows = [LeadRow(s, count, 1.0, width, length, "straight") for s in ("top", "bottom")]
        extent_w, extent_h = body_w, body_h + 2 * length
    else:
        raise ValueError(f"unknown metallic package type {package_type!r}")
    scale = _fit(extent_w, extent_h, extent)
    canvas = _canvas(max(extent_w, extent_h) * scale)
    bw, bh = body_w * scale, body_h * scale
    cx, cy = canvas.center
    x0, y0, x1, y1 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
    rows = [LeadRow(r.side, r.count, r.pitch * scale, r.width * scale, r.length * scale, r.style) for r in rows]
    leads = place_leads(canvas.center, bw, bh, rows, lead_color(rng, gold_probability=0.5))
    for lead in leads:
        draw_lead(canvas.color, canvas.alpha, lead)
    radius = min(bw, bh) * rng.uniform(0.02, 0.08)
    outline = rounded_rect_points(x0, y0, x1, y1, radius)
    _body(canvas, outline, shade(metal, 0.85))
    inset = min(bw, bh) * rng.uniform(0.05, 0.1)
    lid = rounded_rect_points(x0 + inset, y0 + inset, x1 - inset, y1 - inset, radius)
    fill(canvas.color, lid, metal)
    _seam_weld(rng, canvas, lid, metal)
    if package_type == "hybrid":  # pins through glass beads along both long edges
        for lead in leads:
            bead = lead.root - lead.direction * inset * 0.5
            disk(canvas.color, tuple(bead), inset * 0.42, (70.0, 86.0, 82.0))
            disk(canvas.color, tuple(bead), max(1.0, lead.width * 0.6), shade(lead.color, 1.1, 10))
    area = (x0 + inset * 2, y0 + inset * 2, x1 - inset * 2, y1 - inset * 2)
    lines = marking_lines(rng, military=rng.random() < 0.6)
    draw_marking(canvas.color, rng, area, lines, ink, strength=rng.uniform(0.6, 0.95))
    lighting = brushed(rng, canvas.size, rng.uniform(5, 12), horizontal=rng.random() < 0.7)
    lighting += specular(rng, canvas.size, rng.uniform(30, 80), elongation=rng.uniform(1.0, 2.5))
    surface = (x0 + inset, y0 + inset, x1 - inset, y1 - inset)
    return PackageLayer(canvas.color, canvas.alpha, outline, surface, metal, fracture, leads, lighting)


def _to_can(rng: np.random.Generator, extent: float, metal: Color, fracture: Color, ink: Color) -> PackageLayer:
    flange = extent / 2 / (1 + rng.uniform(0.1, 0.18))  # the orientation tab sticks out
    canvas = _canvas(extent)
    center = (float(canvas.center[0]), float(canvas.center[1]))
    tab_angle = rng.uniform(0, 2 * np.pi)
    tab_dir = np.array([np.cos(tab_angle), np.sin(tab_angle)])
    tab_normal = np.array([-tab_dir[1], tab_dir[0]]) * flange * 0.09
    tab_root, tab_tip = canvas.center + tab_dir * flange * 0.9, canvas.center + tab_dir * flange * 1.14
    tab = np.array([tab_root - tab_normal, tab_root + tab_normal, tab_tip + tab_normal, tab_tip - tab_normal])
    fill(canvas.color, tab, shade(metal, 0.8))
    fill(canvas.alpha, tab, 255)
    outline = ellipse_points(center, flange, flange, 64)
    _body(canvas, outline, shade(metal, 0.78))
    cap = flange * rng.uniform(0.8, 0.88)
    # The cap's rounded shoulder: a ring lit on one side, dark on the other.
    disk(canvas.color, center, cap, shade(metal, 0.62))
    light = rng.uniform(0, 360)
    arc(canvas.color, center, cap * 0.93, light - 70, light + 70, shade(metal, 1.25, 20), max(2, int(cap * 0.08)))
    top = cap * rng.uniform(0.72, 0.84)
    disk(canvas.color, center, top, metal)
    ring(canvas.color, center, top, shade(metal, 0.75), 1)
    side = top * 1.35
    area = (center[0] - side / 2, center[1] - side / 2.6, center[0] + side / 2, center[1] + side / 2.6)
    draw_marking(canvas.color, rng, area, marking_lines(rng, military=rng.random() < 0.6)[:2], ink,
                 strength=rng.uniform(0.6, 0.95))
    lighting = concentric(rng, canvas.size, rng.uniform(2, 6))
    lighting += specular(rng, canvas.size, rng.uniform(40, 90), elongation=rng.uniform(1.0, 1.8))
    inner = top / np.sqrt(2)
    surface = (center[0] - inner, center[1] - inner, center[0] + inner, center[1] + inner)
    return PackageLayer(canvas.color, canvas.alpha, outline, surface, metal, fracture, [], lighting)


DRAWERS: dict[str, Callable[[np.random.Generator, str, float], PackageLayer]] = {
    "plastic": _plastic,
    "ceramic": _ceramic,
    "metallic": _metallic,
}


def draw_package(rng: np.random.Generator, material: str, package_type: str, extent: float) -> PackageLayer:
    """The package upright on its own layer; ``extent`` is its largest dimension in px, leads included."""
    return DRAWERS[material](rng, package_type, extent)
