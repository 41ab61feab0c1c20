"""Reading image files into RGB uint8, whatever their depth, channels or EXIF orientation.

Convention: arrays handed to :func:`to_rgb_uint8` are RGB(A) or grayscale, never BGR; code
that gets BGR from OpenCV converts the channel order first (:func:`read_image` does).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm")

_EXIF_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """An image file could not be read; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"Cannot read image '{path}': {reason}")
        self.path = Path(path)
        self.reason = reason


def is_image_path(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Any image array as HxWx3 RGB uint8.

    Accepts HxW or HxWx1 grayscale, HxWx2 gray + alpha, HxWx3 RGB, HxWx4 RGBA, in any of
    uint8, uint16 (and other unsigned ints, scaled from their full range), signed ints
    (negative values clipped to 0), bool and float (taken as 0..1 and clipped). Transparent
    pixels are composited onto white, as image viewers show them. Returns the input itself
    when it already is contiguous RGB uint8.
    """
    image = np.asarray(array)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or image.size == 0 or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)):
        raise ValueError(f"not an image array: shape {image.shape} (expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4)")
    image = _to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 3:
        return np.ascontiguousarray(image)
    color = image[:, :, :1] if channels == 2 else image[:, :, :3]
    alpha = image[:, :, channels - 1 :]
    if channels == 2:
        color = np.repeat(color, 3, axis=2)
    if alpha.min() == 255:
        return np.ascontiguousarray(color)
    weight = alpha.astype(np.float32) / 255.0
    blended = color.astype(np.float32) * weight + 255.0 * (1.0 - weight)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        scaled = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0) * 255.0
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        maximum = float(np.iinfo(image.dtype).max)
        scaled = np.clip(image, 0, None).astype(np.float64) * (255.0 / maximum)
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def read_image(path: Path | str) -> np.ndarray:
    """The image at ``path`` as HxWx3 RGB uint8, with its EXIF orientation applied.

    Raises :class:`ImageReadError` naming the file and the reason: missing, a folder, empty
    (0 bytes), truncated or corrupt, or not an image at all.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if not path.is_file():
        raise ImageReadError(path, "not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(path, f"cannot open the file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return decode_image(data, path)


def decode_image(data: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Like :func:`read_image` for the encoded bytes of a file (``path`` only names it in errors)."""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is not None and decoded.size:
        image = bgr_to_rgb(decoded)
    else:
        # OpenCV refuses truncated files and formats it lacks; Pillow says why (or reads it).
        image = _decode_with_pillow(data, path)
    try:
        rgb = to_rgb_uint8(image)
    except ValueError as exc:
        raise ImageReadError(path, str(exc)) from exc
    return _apply_exif_orientation(rgb, _exif_orientation(data))


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) channel order as RGB(A); grayscale passes through."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def opencv_to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """A frame as OpenCV returns it (BGR, BGRA or gray, any depth) as HxWx3 RGB uint8."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return to_rgb_uint8(bgr_to_rgb(image))


def _decode_with_pillow(data: bytes, path: Path | str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as pil_image:
            pil_image.load()
            if pil_image.mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
                pil_image = pil_image.convert("RGBA" if "A" in pil_image.getbands() else "RGB")
            return np.asarray(pil_image)
    except UnidentifiedImageError as exc:
        start = data[:16]
        raise ImageReadError(path, f"not an image (unrecognised content starting {start!r})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"truncated or corrupt image data ({exc})") from exc


def _exif_orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as pil_image:
            return int(pil_image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # no EXIF, or a header Pillow cannot parse: nothing to rotate
        return 1


def _apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip so the image appears upright (EXIF orientation tags 2..8)."""
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.transpose(1, 0, 2)
    elif orientation == 6:
        image = np.rot90(image, k=-1)
    elif orientation == 7:
        image = image.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:
        image = np.rot90(image, k=1)
    else:
        return image
    return np.ascontiguousarray(image)
