"""Attention maps kept beside a batch review, small, for the detail view and nothing else.

Grad-CAM and EigenCAM maps come from feature maps at 1/8 to 1/32 of the input, so storing them
at 128 px on the longer side and 8 bits loses nothing visible once resized back; 10,000 items
take about 100 MB instead of gigabytes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from station.inference import AttentionMaps

MAP_SIDE = 128


def _shrink(attention: np.ndarray) -> np.ndarray:
    height, width = attention.shape
    scale = min(1.0, MAP_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(attention.astype(np.float32), size, interpolation=cv2.INTER_AREA) if scale < 1.0 else attention
    return np.rint(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_maps(path: Path, attention: AttentionMaps) -> bool:
    """Write the maps that exist; False when there is none to write."""
    arrays = {name: _shrink(m) for name in ("material", "defects") if (m := getattr(attention, name)) is not None}
    if not arrays:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, path)
    return True


def load_maps(path: Path, image_hw: tuple[int, int]) -> AttentionMaps | None:
    """The stored maps resized to the image (HxW float32 in [0, 1]); None when there are none."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError):
        return None
    height, width = image_hw
    maps = {
        name: cv2.resize(array.astype(np.float32) / 255.0, (width, height), interpolation=cv2.INTER_LINEAR)
        for name, array in arrays.items()
    }
    return AttentionMaps(material=maps.get("material"), defects=maps.get("defects"))
