"""Foreign frames: deterministic images that hold no part of the kind a recipe's models know.

They measure the familiarity check (``station.inference.familiarity``): sensor noise, an empty or
uniform stage, lighting gradients, textures (cloth, wood, gratings), printed paper, clutter of
shapes, heavily blurred frames, and frames (whole or cropped) of the other datasets. Frame ``i``
of a family uses ``seed + i``, so the set is the same on every machine; ``docs/RESULTS.md`` says
what was in the one reported.

Families listed in ``FIT_FAMILIES`` may be looked at while choosing a check's settings; the
others are never used for fitting, only for measuring.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

GENERATED_FAMILIES = ("noise", "blank", "gradient", "texture", "print", "clutter", "blur")
OTHER_DATASET = "other_dataset"
FAMILIES = (*GENERATED_FAMILIES, OTHER_DATASET)
FIT_FAMILIES = ("noise", "blank")  # the only ones a fit may see; the rest are held out entirely


@dataclass(frozen=True, eq=False)
class ForeignFrame:
    family: str
    name: str  # what it is, e.g. "noise/gaussian-grey-0003" or "other_dataset/neu-det:crazing_1.jpg"
    image: np.ndarray  # HxWx3 RGB uint8
    reference: np.ndarray | None = None  # recipes that compare against a template: what it is compared with


@dataclass(frozen=True)
class ForeignSpec:
    """``per_family`` generated frames of each family at ``size`` (H, W), and up to
    ``per_source`` frames of each other dataset (half whole, half a crop)."""

    size: tuple[int, int]
    per_family: int = 20
    seed: int = 7_000_000
    other_sources: dict[str, Sequence[Path]] = field(default_factory=dict)  # dataset name -> image files
    per_source: int = 40
    families: tuple[str, ...] = FAMILIES


def _noise(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    kind = ("gaussian-grey", "gaussian-colour", "uniform", "salt-pepper", "low-light")[index % 5]
    mean, sigma = rng.uniform(60, 190), rng.uniform(8, 60)
    if kind == "gaussian-grey":
        image = np.repeat(rng.normal(mean, sigma, (height, width, 1)), 3, axis=2)
    elif kind == "gaussian-colour":
        image = rng.normal(rng.uniform(60, 190, 3), sigma, (height, width, 3))
    elif kind == "uniform":
        image = rng.uniform(0, 255, (height, width, 3))
    elif kind == "salt-pepper":
        image = np.full((height, width, 3), mean)
        dots = rng.random((height, width))
        image[dots < 0.08] = 0
        image[dots > 0.92] = 255
    else:
        image = np.repeat(rng.normal(rng.uniform(15, 40), rng.uniform(4, 12), (height, width, 1)), 3, axis=2)
    return kind, image


def _blank(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    kind = ("grey", "colour", "dark", "bright")[index % 4]
    colour = {"grey": np.full(3, rng.uniform(40, 220)), "colour": rng.uniform(20, 235, 3),
              "dark": np.full(3, rng.uniform(0, 25)), "bright": np.full(3, rng.uniform(235, 255))}[kind]
    image = np.broadcast_to(colour, (height, width, 3)) + rng.normal(0, 1.5, (height, width, 1))
    return kind, image


def _gradient(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    kind = ("linear", "radial")[index % 2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "linear":
        angle = rng.uniform(0, np.pi)
        ramp = xs * np.cos(angle) + ys * np.sin(angle)
    else:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ramp = np.hypot(ys - cy, xs - cx)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return kind, start + ramp[..., None] * (end - start)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float, stretch: float = 1.0) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, int(height / scale)), max(2, int(width / (scale * stretch)))))
    field_ = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return (field_ - field_.mean()) / max(float(field_.std()), 1e-6)


def _texture(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    kind = ("grating", "checker", "cloth", "wood", "stripes")[index % 5]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "grating":
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 40)
        pattern = np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
    elif kind == "checker":
        cell = rng.integers(4, 48)
        pattern = (((xs // cell) + (ys // cell)) % 2) * 2 - 1
    elif kind == "cloth":  # a woven look: two crossed gratings under smooth noise
        period = rng.uniform(3, 10)
        pattern = 0.5 * (np.sin(2 * np.pi * xs / period) * np.sin(2 * np.pi * ys / period))
        pattern = pattern + 0.8 * _smooth_noise(rng, height, width, rng.uniform(20, 80))
    elif kind == "wood":
        pattern = np.sin(_smooth_noise(rng, height, width, rng.uniform(30, 90), stretch=6.0) * rng.uniform(4, 10))
    else:
        width_px = rng.integers(2, 30)
        pattern = ((xs // width_px) % 2) * 2 - 1
    base, contrast = rng.uniform(60, 190, 3), rng.uniform(15, 70)
    return kind, base + contrast * pattern[..., None] * rng.uniform(0.6, 1.0, 3)


def _print(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    """Printed paper: lines of text (and a table rule or two) on an off-white sheet."""
    image = np.full((height, width, 3), rng.uniform(215, 250), dtype=np.float64) + rng.normal(0, 3, (height, width, 1))
    canvas = np.clip(image, 0, 255).astype(np.uint8)
    scale = rng.uniform(0.35, 1.2) * min(height, width) / 400
    line = max(8, int(28 * scale))
    letters = string.ascii_letters + string.digits + "  .,-"
    for top in range(line, height, line):
        text = "".join(rng.choice(list(letters), int(rng.integers(10, 60))))
        cv2.putText(canvas, text, (int(rng.integers(0, max(1, width // 8))), top), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.2, scale), (20, 20, 20), max(1, int(2 * scale)), cv2.LINE_AA)
    if index % 2:
        cv2.line(canvas, (0, height // 3), (width, height // 3), (30, 30, 30), max(1, int(3 * scale)))
    return "text", canvas.astype(np.float64)


def _clutter(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    """An ordinary scene stand-in: a smooth background with overlapping coloured shapes."""
    background = rng.uniform(30, 220, 3) + 25 * _smooth_noise(rng, height, width, 120)[..., None]
    canvas = np.clip(background, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 15))):
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = (int(rng.integers(5, max(6, width // 3))), int(rng.integers(5, max(6, height // 3))))
        if rng.random() < 0.5:
            cv2.ellipse(canvas, centre, size, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:
            corner = (centre[0] + size[0], centre[1] + size[1])
            cv2.rectangle(canvas, centre, corner, colour, -1)
    return "shapes", cv2.GaussianBlur(canvas, (0, 0), 1.0).astype(np.float64)


def _blur(rng: np.random.Generator, height: int, width: int, index: int) -> tuple[str, np.ndarray]:
    """A blurred hand or cloth in front of the lens: clutter or texture under a heavy blur."""
    maker = _clutter if index % 2 else _texture
    _, image = maker(rng, height, width, index // 2)
    sigma = rng.uniform(0.03, 0.1) * min(height, width)
    return "defocus", cv2.GaussianBlur(np.clip(image, 0, 255).astype(np.uint8), (0, 0), sigma).astype(np.float64)


_MAKERS = {"noise": _noise, "blank": _blank, "gradient": _gradient, "texture": _texture, "print": _print,
           "clutter": _clutter, "blur": _blur}


def _as_frame(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))


def generated_frame(family: str, index: int, size: tuple[int, int], seed: int = 7_000_000) -> ForeignFrame:
    """Frame ``index`` of one generated family at ``size`` (H, W)."""
    if family not in _MAKERS:
        raise ValueError(f"unknown foreign family {family!r}; generated ones: {', '.join(GENERATED_FAMILIES)}")
    family_offset = GENERATED_FAMILIES.index(family) * 100_003
    rng = np.random.default_rng(seed + family_offset + index)
    height, width = size
    kind, image = _MAKERS[family](rng, height, width, index)
    return ForeignFrame(family, f"{family}/{kind}-{index:04d}", _as_frame(image))


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def other_dataset_frame(source: str, path: Path, index: int, size: tuple[int, int], seed: int = 7_000_000) -> ForeignFrame:
    """A frame of another dataset at ``size``: even ``index`` the whole frame, odd a random crop."""
    height, width = size
    image = _read_rgb(path)
    kind = "whole"
    if index % 2:
        rng = np.random.default_rng(seed + 31 * index + 5)
        side = max(16, int(min(image.shape[:2]) * rng.uniform(0.3, 0.7)))
        top = int(rng.integers(0, image.shape[0] - side + 1))
        left = int(rng.integers(0, image.shape[1] - side + 1))
        image, kind = image[top : top + side, left : left + side], "crop"
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return ForeignFrame(OTHER_DATASET, f"{OTHER_DATASET}/{source}:{path.name}:{kind}", np.ascontiguousarray(image))


def foreign_frames(spec: ForeignSpec) -> Iterator[ForeignFrame]:
    """Every frame of ``spec``, family by family, in a fixed order."""
    for family in spec.families:
        if family == OTHER_DATASET:
            continue
        for index in range(spec.per_family):
            yield generated_frame(family, index, spec.size, spec.seed)
    if OTHER_DATASET not in spec.families:
        return
    for source, paths in sorted(spec.other_sources.items()):
        ordered = sorted(paths)
        if not ordered:
            continue
        picks = np.random.default_rng(spec.seed + len(source)).permutation(len(ordered))[: spec.per_source]
        for index, pick in enumerate(sorted(int(p) for p in picks)):
            yield other_dataset_frame(source, ordered[pick], index, spec.size, spec.seed)


def other_dataset_files(root: Path, source: str) -> list[Path]:
    """The images of a known dataset that serve as foreign frames for the other recipes:
    ``deeppcb`` (tested boards and templates), ``neu-det``, or a synthetic package folder."""
    root = Path(root)
    if source == "deeppcb":
        return sorted(root.glob("group*/*/*_test.jpg")) + sorted(root.glob("group*/*/*_temp.jpg"))
    if source == "neu-det":
        return sorted((root / "images").glob("*.jpg"))
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
