"""Where the part is: a package-shaped object standing out from the stage around it.

The demo recipe's parts lie on a stage with a smooth, mostly even background. The background is
modelled from the frame's border ring (a plane per channel, so lighting gradients are part of
it), the pixels that differ from it by several times the ring's own spread are the object, and
the largest such region is the part. No region, or one that fills the frame or runs along its
border (a texture, a board, text), means no part in view. The region is also where an accepted
call's attention must lie (batch review's bulk accept).

Recipes whose subject fills the frame (a steel strip, a bare board) say ``"frame"``: the part is
the whole frame and only the network features decide familiarity.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

_SIDE = 160  # the localiser works on a copy this size (long side)


@dataclass(frozen=True)
class PartRegionCheck:
    """``kind``: "object" (find a part on the stage) or "frame" (the whole frame is the part).

    ``min_area``/``max_area``: the part's share of the frame; ``max_border``: the largest share
    of the frame's border ring the part may cover; ``contrast``: how many ring spreads a pixel
    must differ from the background by to belong to the part.
    """

    kind: str = "object"
    min_area: float = 0.01
    max_area: float = 0.8
    max_border: float = 0.2
    contrast: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in ("object", "frame"):
            raise ValueError(f"part_region 'kind' must be 'object' or 'frame', got {self.kind!r}")
        for name in ("min_area", "max_area", "max_border"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"part_region {name!r} must be a share in [0, 1], got {value!r}")
        if not self.min_area < self.max_area:
            raise ValueError("part_region 'min_area' must be below 'max_area'")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartRegionCheck:
        if not isinstance(data, dict):
            raise TypeError(f"part_region must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"part_region: unknown field(s) {', '.join(map(repr, unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class PartRegion:
    """``mask``: HxW bool at the localiser's size (None: no part found); ``problem`` says why not."""

    mask: np.ndarray | None
    problem: str = ""

    @property
    def found(self) -> bool:
        return self.mask is not None

    def share_inside(self, attention: np.ndarray | None) -> float | None:
        """The share of ``attention``'s mass (an HxW map of any size) inside the part; None
        without a map or a part; 1.0 for a map with no mass at all (nothing drew attention)."""
        if attention is None or self.mask is None:
            return None
        small = cv2.resize(attention.astype(np.float32), (self.mask.shape[1], self.mask.shape[0]),
                           interpolation=cv2.INTER_AREA)
        small = np.clip(small, 0.0, None)
        total = float(small.sum())
        if total <= 1e-6:
            return 1.0
        return float(small[self.mask].sum() / total)


def _small(image: np.ndarray) -> np.ndarray:
    scale = _SIDE / max(image.shape[:2])
    if scale >= 1:
        return image.astype(np.float32)
    size = (max(8, round(image.shape[1] * scale)), max(8, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _border_ring(height: int, width: int, thickness: int) -> np.ndarray:
    ring = np.zeros((height, width), dtype=bool)
    ring[:thickness], ring[-thickness:], ring[:, :thickness], ring[:, -thickness:] = True, True, True, True
    return ring


def find_part(check: PartRegionCheck | None, image: np.ndarray) -> PartRegion:
    """The part in an HxWx3 RGB uint8 frame (see the module docstring)."""
    if check is None or check.kind == "frame":
        scale = min(1.0, _SIDE / max(image.shape[:2]))
        return PartRegion(np.ones((max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))), bool))
    small = _small(image)
    height, width = small.shape[:2]
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    ring = _border_ring(height, width, max(2, min(height, width) // 40))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    design = np.stack([np.ones(height * width, np.float32), xs.ravel() / width, ys.ravel() / height], axis=1)
    pixels = small.reshape(-1, 3)
    coefficients, *_ = np.linalg.lstsq(design[ring.ravel()], pixels[ring.ravel()], rcond=None)
    residual = np.linalg.norm(pixels - design @ coefficients, axis=1).reshape(height, width)
    spread = max(1.4826 * float(np.median(residual[ring])), 1.5)
    mask = (residual > check.contrast * spread).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return PartRegion(None, "nothing stands out from the stage")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = labels == largest
    # fill holes: a lid or a label inside the package outline belongs to the part
    contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros((height, width), dtype=np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    part = filled.astype(bool)
    area = float(part.mean())
    border = float(part[ring].mean())
    if area < check.min_area:
        return PartRegion(None, f"nothing part-sized stands out from the stage (largest object {area:.1%} of the frame)")
    if area > check.max_area or border > check.max_border:
        return PartRegion(None, f"no part on a stage in view: the structure fills the frame ({area:.0%} of it, "
                                f"{border:.0%} of its border)")
    return PartRegion(part)
