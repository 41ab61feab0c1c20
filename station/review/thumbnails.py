"""Thumbnails on disk: small JPEGs keyed by the file's sha256, shared by every review.

The results table shows a thumbnail per file without keeping any in memory beyond the rows
on screen; the PDF summary embeds them by path. Content-addressed, so a changed file gets a
new thumbnail and identical files share one. A missing thumbnail (the cache was cleared) is
made again the next time the folder is opened.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from station import paths

THUMBNAIL_SIDE = 128  # px, the longer side
_JPEG_QUALITY = 85


def make_thumbnail(image: np.ndarray, max_side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """An RGB uint8 image shrunk so its longer side is at most ``max_side`` (never enlarged)."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class ThumbnailCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.cache_dir() / "thumbnails"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def write(self, sha256: str, image: np.ndarray) -> Path:
        """Store the thumbnail of an RGB uint8 ``image`` (written to a temporary name, then renamed)."""
        target = self.path(sha256)
        thumbnail = make_thumbnail(image)
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(thumbnail[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:
            raise ValueError(f"OpenCV could not encode a thumbnail of a {image.shape} image")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(encoded.tobytes())
        os.replace(temporary, target)
        return target
