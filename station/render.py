"""Overlays on arrays: attention heatmaps, defect boxes with labels, and the composed view.

Pure functions on RGB uint8 arrays (numpy + OpenCV, no Qt): the GUI, the batch review and the
PDF report all draw the same pixels. Inputs are never modified; every function returns a new
array.

Defects on a package can be 0.1 mm across, 5-20 px in a frame, so boxes are drawn *around* the
defect (the outline sits outside the box, never over the defect itself), with a dark edge under
the coloured line so it reads on bright and dark packages alike, and the label is a filled tag
whose size follows the image size rather than the defect size. A small image (a 200-px steel
patch) that the screen shows enlarged is drawn on an enlarged copy (``upscale_to``), so its tags
are not blown up with it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from station.labels import display_name

if TYPE_CHECKING:
    from station.inference import Defect, InspectionResult

Color = tuple[int, int, int]

# Okabe-Ito, colour-blind safe (its black swapped for a red that reads on light packages), RGB
PALETTE: tuple[Color, ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (230, 25, 75),
)
_EDGE: Color = (0, 0, 0)
_HIGHLIGHT_HALO: Color = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX  # built into OpenCV: nothing to ship or download

# the GUI's views: draw images shorter than this (long side) on a whole-number enlarged copy
SCREEN_LONG_SIDE = 720

COLORMAPS = {"inferno": cv2.COLORMAP_INFERNO, "turbo": cv2.COLORMAP_TURBO, "viridis": cv2.COLORMAP_VIRIDIS}


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB uint8 image, got {image.dtype} array of shape {image.shape}")


def colorize_heatmap(attention: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """An HxW map in [0, 1] -> HxWx3 RGB uint8 through a perceptually uniform colormap.

    Values outside [0, 1] are clipped and NaN counts as 0, so the colour of a value means the
    same thing on every image (the engine scales maps against a fixed reference, not per image).
    """
    if attention.ndim != 2:
        raise ValueError(f"attention must be an HxW map, got shape {attention.shape}")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; known: {', '.join(COLORMAPS)}")
    levels = np.nan_to_num(np.asarray(attention, dtype=np.float32), nan=0.0)
    levels = np.rint(np.clip(levels, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def blend(image: np.ndarray, overlay: np.ndarray, opacity: float | np.ndarray) -> np.ndarray:
    """``image * (1 - opacity) + overlay * opacity``; ``opacity`` is a number or an HxW map."""
    _check_image(image)
    if overlay.shape != image.shape:
        raise ValueError(f"overlay shape {overlay.shape} differs from image shape {image.shape}")
    if np.isscalar(opacity) or np.ndim(opacity) == 0:
        alpha = float(np.clip(opacity, 0.0, 1.0))
        return cv2.addWeighted(overlay, alpha, image, 1.0 - alpha, 0.0)
    alpha_map = np.asarray(opacity, dtype=np.float32)
    if alpha_map.shape != image.shape[:2]:
        raise ValueError(f"opacity map shape {alpha_map.shape} differs from image size {image.shape[:2]}")
    alpha_map = np.clip(alpha_map, 0.0, 1.0)[..., None]
    mixed = image.astype(np.float32) * (1.0 - alpha_map) + overlay.astype(np.float32) * alpha_map
    return np.rint(mixed).astype(np.uint8)


def class_color(label: str, class_colors: Mapping[str, Color] | None = None) -> Color:
    """The colour of a defect class: from ``class_colors`` when given, else a stable palette pick."""
    if class_colors and label in class_colors:
        return tuple(int(c) for c in class_colors[label])  # type: ignore[return-value]
    return PALETTE[zlib.crc32(label.encode("utf-8")) % len(PALETTE)]


def _line_thickness(image_hw: tuple[int, int]) -> int:
    # 1 px up to ~700 px, 2 px for a 1280x960 frame, 4 px for 4K
    return max(1, round(max(image_hw) / 640))


def _text_color(background: Color) -> Color:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _rectangle(canvas: np.ndarray, box: tuple[float, float, float, float], offset: int, color: Color) -> None:
    """A 1-px rectangle ``offset`` pixels outside the pixels the box covers."""
    x1, y1 = int(np.floor(box[0])) - offset, int(np.floor(box[1])) - offset
    x2, y2 = int(np.ceil(box[2])) - 1 + offset, int(np.ceil(box[3])) - 1 + offset
    cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 1, cv2.LINE_8)


Rect = tuple[int, int, int, int]  # left, top, right, bottom (exclusive)


def _overlap_area(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _place_tag(anchor: Rect, tag_w: int, tag_h: int, image_hw: tuple[int, int], placed: Sequence[Rect]) -> Rect:
    """Where a ``tag_w × tag_h`` tag for the outline ``anchor`` (x1, y1, x2, y2) goes: above its
    left end, below it, above or below its right end, inside its top-left corner, then the same
    one and two tag heights further out (a dense row of defects gets stacked tags), whichever
    comes first without covering a tag already ``placed``; failing all, the least-covering one."""
    height, width = image_hw
    x1, y1, x2, y2 = anchor
    candidates = []
    for level in range(3):
        for left in (x1, x2 + 1 - tag_w):
            candidates += [(left, y1 - (level + 1) * tag_h), (left, y2 + 1 + level * tag_h)]
        if level == 0:
            candidates.append((x1 + 1, y1 + 1))
    best: tuple[int, int, Rect] | None = None
    for order, (left, top) in enumerate(candidates):
        left = int(np.clip(left, 0, max(0, width - tag_w)))
        fits = 0 <= top and top + tag_h <= height
        top = int(np.clip(top, 0, max(0, height - tag_h)))
        rect = (left, top, left + tag_w, top + tag_h)
        cost = sum(_overlap_area(rect, other) for other in placed) + (0 if fits else tag_w * tag_h)
        if cost == 0:
            return rect
        if best is None or (cost, order) < best[:2]:
            best = (cost, order, rect)
    assert best is not None
    return best[2]


@dataclass(frozen=True)
class _Tag:
    text: str
    color: Color
    font_scale: float
    text_thickness: int
    pad: int
    text_h: int
    rect: Rect


def _make_tag(text: str, anchor: Rect, color: Color, thickness: int, image_hw: tuple[int, int],
              placed: list[Rect]) -> _Tag:
    """A tag for the outline ``anchor``, placed by ``_place_tag``; its rectangle joins ``placed``."""
    font_scale = max(0.4, max(image_hw) / 1600)
    text_thickness = max(1, thickness // 2 + (1 if font_scale >= 0.8 else 0))
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, text_thickness)
    pad = max(2, thickness + 1)
    rect = _place_tag(anchor, text_w + 2 * pad, text_h + baseline + 2 * pad, image_hw, placed)
    placed.append(rect)
    return _Tag(text, color, font_scale, text_thickness, pad, text_h, rect)


def _draw_tag(canvas: np.ndarray, tag: _Tag) -> None:
    left, top, right, bottom = tag.rect
    cv2.rectangle(canvas, (left, top), (right - 1, bottom - 1), tag.color, cv2.FILLED)
    cv2.rectangle(canvas, (left, top), (right - 1, bottom - 1), _EDGE, 1)
    origin = (left + tag.pad, top + tag.pad + tag.text_h)
    cv2.putText(canvas, tag.text, origin, _FONT, tag.font_scale, _text_color(tag.color), tag.text_thickness,
                cv2.LINE_AA)


def draw_defects(
    image: np.ndarray,
    defects: Sequence[Defect],
    class_colors: Mapping[str, Color] | None = None,
    highlight_index: int | None = None,
    min_score: float = 0.0,
) -> np.ndarray:
    """Outline each defect with ``score >= min_score`` and tag it with its class and score.

    ``highlight_index`` indexes ``defects`` as given (the GUI's table row), whether or not that
    defect passes ``min_score``: a selected defect is always shown, thicker and with a white halo.
    Outlines are drawn before tags, so no outline crosses a tag. Tags are placed so that they do
    not cover one another where there is room: the selected defect's first, then by score, so
    the surest defects get the places next to their boxes. The selected one is drawn on top.
    """
    _check_image(image)
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = _line_thickness((height, width))
    shown = sorted((i for i, d in enumerate(defects) if d.score >= min_score and i != highlight_index),
                   key=lambda i: -defects[i].score)
    if highlight_index is not None and 0 <= highlight_index < len(defects):
        shown.insert(0, highlight_index)
    outlines: dict[int, tuple[Rect, Color, int]] = {}
    for index in shown[::-1]:  # the selected outline last, on top
        defect = defects[index]
        color = class_color(defect.label, class_colors)
        highlighted = index == highlight_index
        line = thickness * 2 if highlighted else thickness
        # rings drawn outwards, leaving a 1-px gap around the box so a 5-px defect and its edge
        # stay visible: dark edge, coloured line, dark edge (readable on bright and dark
        # packages), and the halo of the selected defect
        rings = [(_EDGE, 1), (color, line), (_EDGE, 1)]
        if highlighted:
            rings.append((_HIGHLIGHT_HALO, thickness + 1))
        offset = 2
        for ring_color, width_px in rings:
            for _ in range(width_px):
                _rectangle(canvas, defect.box, offset, ring_color)
                offset += 1
        x1 = max(0, int(np.floor(defect.box[0])) - offset)
        y1 = max(0, int(np.floor(defect.box[1])) - offset)
        x2 = min(width - 1, int(np.ceil(defect.box[2])) - 1 + offset)
        y2 = min(height - 1, int(np.ceil(defect.box[3])) - 1 + offset)
        outlines[index] = ((x1, y1, x2, y2), color, line)
    placed: list[Rect] = []
    tags = [_make_tag(f"{display_name(defects[i].label)} {defects[i].score:.2f}", *outlines[i], (height, width), placed)
            for i in shown]
    for tag in tags[::-1]:  # the surest last, the selected one on top of all
        _draw_tag(canvas, tag)
    return canvas


def attention_opacity(attention: np.ndarray, opacity: float) -> np.ndarray:
    """Per-pixel opacity: cold regions leave the image untouched, hot regions get ``opacity``.

    The square root keeps moderate attention visible while a map near 0 (a clean part) stays
    transparent.
    """
    levels = np.clip(np.nan_to_num(attention.astype(np.float32), nan=0.0), 0.0, 1.0)
    return float(np.clip(opacity, 0.0, 1.0)) * np.sqrt(levels)


def compose_overlay(
    image: np.ndarray,
    result: InspectionResult,
    show_attention: bool = True,
    attention: Literal["material", "defects"] = "material",
    opacity: float = 0.45,
    show_boxes: bool = True,
    min_score: float = 0.0,
    highlight_index: int | None = None,
    class_colors: Mapping[str, Color] | None = None,
    upscale_to: int = 0,
) -> np.ndarray:
    """The captured image with the chosen attention map blended in and the defects drawn on top.

    A missing map (the recipe has no such model, or maps were not requested) is simply not drawn.
    ``upscale_to``: an image whose long side is shorter is enlarged by the whole factor
    ``display_scale`` gives (nearest neighbour: each pixel stays a crisp block) before the boxes
    and tags are drawn, so they are drawn at the resolution the screen shows them.
    """
    _check_image(image)
    if attention not in ("material", "defects"):
        raise ValueError(f"attention must be 'material' or 'defects', got {attention!r}")
    canvas = image
    maps = result.attention
    heatmap = getattr(maps, attention, None) if maps is not None else None
    if show_attention and heatmap is not None:
        if heatmap.shape != image.shape[:2]:
            raise ValueError(f"{attention} attention map is {heatmap.shape}, the image {image.shape[:2]}")
        canvas = blend(canvas, colorize_heatmap(heatmap), attention_opacity(heatmap, opacity))
    scale = display_scale(image.shape[:2], upscale_to)
    if scale > 1:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    if show_boxes and (result.defects or highlight_index is not None):
        defects = [replace(d, box=tuple(scale * c for c in d.box)) for d in result.defects]
        canvas = draw_defects(canvas, defects, class_colors, highlight_index, min_score)
    return canvas if canvas is not image else image.copy()


def display_scale(image_hw: tuple[int, int], upscale_to: int) -> int:
    """The whole factor that brings the long side to at least ``upscale_to`` (1: none needed)."""
    long_side = max(image_hw)
    return max(1, math.ceil(upscale_to / long_side)) if upscale_to > 0 and long_side > 0 else 1
