"""Reading image files into RGB uint8, whatever their depth, channels or EXIF orientation.

Convention: arrays handed to :func:`to_rgb_uint8` are RGB(A) or grayscale, never BGR; code
that gets BGR from OpenCV converts the channel order first (:func:`read_image` does).

Hostile files never reach a decoder unchecked: the size in the header is compared with a pixel
cap first (a 74-byte PNG may claim 40000x40000 pixels), and an image above
``FULL_RESOLUTION_PIXELS`` is decoded at 1/2, 1/4 or 1/8 of its size (a JPEG is scaled while it
is decoded, so its full-size pixels never exist in memory), one such image at a time. The
reduction depends on the header alone, so every reader of a file gets the same pixels.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm")

_EXIF_ORIENTATION = 0x0112

DEFAULT_MAX_PIXELS = 100_000_000  # the settings' max_image_megapixels; a header above it is refused
FULL_RESOLUTION_PIXELS = 4096 * 4096  # larger images are decoded reduced (far above any network's input)
_REDUCTIONS = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))
# Decoding a large image takes hundreds of MB however it is reduced (PNG and TIFF decode at full
# size first): one at a time, so a batch's decode threads never hold several.
_LARGE_DECODE = threading.Lock()


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


def read_image(path: Path | str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image at ``path`` as HxWx3 RGB uint8, with its EXIF orientation applied.

    Raises :class:`ImageReadError` naming the file and the reason: missing, a dangling or
    looping symbolic link, a folder or device, empty (0 bytes), over the pixel cap, truncated
    or corrupt, or not an image at all.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise ImageReadError(path, problem)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(path, f"cannot open the file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return decode_image(data, path, max_pixels=max_pixels)


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file that can be read (None when it is one)."""
    try:
        target = path.stat()
    except OSError as exc:
        if path.is_symlink():
            if exc.errno == errno.ELOOP:
                return "a symbolic link that loops (it leads back to itself)"
            return f"a symbolic link to a missing file ({os.readlink(path)})"
        if exc.errno == errno.ENOENT:
            return "no such file"
        return f"cannot open the file ({exc.strerror or exc})"
    if stat.S_ISDIR(target.st_mode):
        return "not a file (a folder)"
    if not stat.S_ISREG(target.st_mode):
        return "not a regular file (a device, pipe or socket: never read, it could block)"
    return None


def decode_image(data: bytes, path: Path | str = "<bytes>", *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Like :func:`read_image` for the encoded bytes of a file (``path`` only names it in errors).

    An image whose header claims more than ``max_pixels`` (None: no cap) is refused before it
    is decoded; one above ``FULL_RESOLUTION_PIXELS`` comes back reduced (see the module doc).
    """
    size = header_size(data, path, max_pixels)
    reduction, flag = reduction_for(size)
    if reduction == 1:
        image = _decode(data, path, cv2.IMREAD_UNCHANGED, size)
    else:
        with _LARGE_DECODE:
            image = _decode(data, path, flag | cv2.IMREAD_IGNORE_ORIENTATION, size, reduction)
    try:
        rgb = to_rgb_uint8(image)
    except ValueError as exc:
        raise ImageReadError(path, str(exc)) from exc
    return _apply_exif_orientation(rgb, _exif_orientation(data))


def header_size(data: bytes, path: Path | str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding it; None when Pillow cannot
    parse the header (the decoder then says what is wrong). ImageReadError above ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as pil_image:
                width, height = pil_image.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap, twice its MAX_IMAGE_PIXELS
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(claimed.group(1)) if claimed else None
        raise ImageReadError(path, _over_cap(pixels, max_pixels)) from exc
    except Exception:  # noqa: BLE001 — not parseable here; OpenCV or Pillow's decoder gives the reason
        return None
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(path, _over_cap(width * height, max_pixels, (width, height)))
    return width, height


def _over_cap(pixels: int | None, max_pixels: int | None, size: tuple[int, int] | None = None) -> str:
    claimed = f"{size[0]}x{size[1]} pixels" if size else (f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels")
    limit = f"the limit is {max_pixels / 1e6:g} megapixels (setting max_image_megapixels)" if max_pixels else "Pillow's limit"
    return f"the image is too large to inspect: its header claims {claimed}; {limit}"


def reduction_for(size: tuple[int, int] | None) -> tuple[int, int]:
    """(factor, OpenCV read flag) to decode an image of ``size``: (1, IMREAD_UNCHANGED) up to
    ``FULL_RESOLUTION_PIXELS``, else the smallest of 1/2, 1/4, 1/8 that fits (1/8 at most)."""
    if size is None or size[0] * size[1] <= FULL_RESOLUTION_PIXELS:
        return 1, cv2.IMREAD_UNCHANGED
    pixels = size[0] * size[1]
    for factor, flag in _REDUCTIONS:
        if pixels / (factor * factor) <= FULL_RESOLUTION_PIXELS:
            return factor, flag
    return _REDUCTIONS[-1]


def _decode(data: bytes, path: Path | str, flag: int, size: tuple[int, int] | None, reduction: int = 1) -> np.ndarray:
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as exc:  # OpenCV's own limits (CV_IO_MAX_IMAGE_PIXELS) and decoder failures raise
        decoded = None
        if size is None:
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
            raise ImageReadError(path, f"cannot be decoded ({message})") from exc
    if decoded is not None and decoded.size:
        return bgr_to_rgb(decoded)
    # OpenCV refuses truncated files and formats it lacks; Pillow says why (or reads it).
    return _decode_with_pillow(data, path, reduction)


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


def _decode_with_pillow(data: bytes, path: Path | str, reduction: int = 1) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil_image = Image.open(io.BytesIO(data))
        with pil_image:
            if reduction > 1:
                width, height = pil_image.size
                target = (max(1, width // reduction), max(1, height // reduction))
                pil_image.draft("RGB", target)  # a JPEG scales while decoding; other formats are reduced after
                pil_image.load()
                if pil_image.size != target:
                    pil_image = pil_image.convert("RGB").resize(target, Image.Resampling.BOX)
            pil_image.load()
            if pil_image.mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
                pil_image = pil_image.convert("RGBA" if "A" in pil_image.getbands() else "RGB")
            return np.asarray(pil_image)
    except UnidentifiedImageError as exc:
        start = data[:16]
        raise ImageReadError(path, f"not an image (unrecognised content starting {start!r})") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, _over_cap(None, None)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"truncated or corrupt image data ({exc})") from exc
    except MemoryError as exc:
        raise ImageReadError(path, "too large to decode in the memory available") from exc


def _exif_orientation(data: bytes) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil_image = Image.open(io.BytesIO(data))
        with pil_image:
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
