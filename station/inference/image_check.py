"""A recipe's acceptance check on the captured frame, before any model's answer is trusted.

The classifier has only seen packages. Shown an empty stage, a capped lens or a blown-out
frame, it still names a material, and it can name it confidently (the demo classifier reads a
flat grey frame as "metallic" at 88 %). The networks cannot say that the frame is unfit to
judge, so the recipe says what a usable frame looks like, and a frame that fails goes to a
person with the reason.

The limits are per recipe because what is normal differs: a camera frame of a package is
never flat, but a DeepPCB scan is a binary image that can be 99 % one value, and a bright
NEU steel patch can be half saturated. Recipes for such data leave the check out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from station.inference.results import MaterialCall

_CHECK_SIDE = 256  # the check looks at a copy this size (long side): fast, and noise-averaged


@dataclass(frozen=True)
class ImageCheck:
    """A frame passes when it has contrast, light and unclipped highlights enough.

    ``min_contrast``: grey levels between the 1st and 99th percentile (a flat frame has ~0).
    ``min_brightness``: the 99th percentile grey level (a dark frame has nothing above it).
    ``max_saturated``: the largest share of pixels at 250 or above.
    """

    min_contrast: float = 12.0
    min_brightness: float = 40.0
    max_saturated: float = 0.25

    def __post_init__(self) -> None:
        for name in ("min_contrast", "min_brightness"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 255:
                raise ValueError(f"image_check {name!r} must be a grey level in [0, 255], got {value!r}")
        saturated = self.max_saturated
        if isinstance(saturated, bool) or not isinstance(saturated, (int, float)) or not 0 < saturated <= 1:
            raise ValueError(f"image_check 'max_saturated' must be a share in (0, 1], got {saturated!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageCheck:
        if not isinstance(data, dict):
            raise TypeError(f"image_check must be an object of limits, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"image_check: unknown limit(s) {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def problems(self, image: np.ndarray) -> tuple[str, ...]:
        """What is wrong with an HxWx3 RGB uint8 frame, in words for the operator; () if nothing."""
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        scale = _CHECK_SIDE / max(grey.shape)
        if scale < 1:
            grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA)
        low, high = np.percentile(grey, (1, 99))
        saturated = float(np.mean(grey >= 250))
        found = []
        if high < self.min_brightness:
            found.append(f"the frame is too dark (brightest 1 % at grey {high:.0f}, needs {self.min_brightness:.0f}): "
                         "check the light and the exposure")
        elif high - low < self.min_contrast:
            found.append(f"the frame is nearly uniform (contrast {high - low:.0f} grey levels, needs "
                         f"{self.min_contrast:.0f}): is a part in view and in focus?")
        if saturated > self.max_saturated:
            found.append(f"{saturated:.0%} of the frame is overexposed (limit {self.max_saturated:.0%}): "
                         "lower the exposure or the light")
        return tuple(found)


def check_frame(check: ImageCheck | None, image: np.ndarray) -> tuple[str, ...]:
    """``check.problems(image)``, or () for a recipe without a check."""
    return () if check is None else check.problems(image)


def route_unfit_frame(call: MaterialCall, problems: tuple[str, ...]) -> MaterialCall:
    """The call as made, marked uncertain (to a person) when the frame failed its check: the
    probabilities stay what the network said, for the record."""
    return dataclasses.replace(call, uncertain=True) if problems and not call.uncertain else call
