"""An image folder as a finite source: every image in natural order, none skipped.

Files are sorted naturally ("img2" before "img10"). An unreadable image (0 bytes, truncated,
not an image despite its name, a dangling or looping link, a header over the pixel cap, anything
a decoder raises) makes ``read()`` raise :class:`FrameReadError` naming the file,
is added to ``problems``, and the following ``read()`` goes on with the next file. Files that
are not images by name (notes.txt, labels.xml) are listed once in ``problems`` at open.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from station.capture.base import Frame, FrameReadError, FrameSource, Pacer, SourceError
from station.capture.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageReadError, is_image_path, read_image

log = logging.getLogger(__name__)

_LISTED_IGNORED = 5  # how many ignored file names the problem line spells out


def natural_key(path: Path) -> tuple:
    """Sort key: digit runs compare as numbers, the rest case-insensitively."""
    parts = re.split(r"(\d+)", path.name)
    return tuple((0, int(part), part) if part.isdigit() else (1, part.lower(), part) for part in parts)


def list_images(folder: Path, *, recursive: bool = False) -> tuple[list[Path], list[Path]]:
    """(images, other files) in ``folder``, both naturally sorted; hidden files count as other."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    images, others = [], []
    for entry in entries:
        if entry.is_dir():
            continue
        (images if is_image_path(entry) else others).append(entry)
    def sort_key(path: Path) -> tuple:
        return tuple(natural_key(Path(part)) for part in path.relative_to(folder).parts)

    return sorted(images, key=sort_key), sorted(others, key=sort_key)


class ImageFolderSource(FrameSource):
    """The images of a folder (or one image file), in natural order.

    ``frame_id`` is the file's position in :attr:`files`; ``Frame.source`` is its path.
    ``slideshow_fps`` paces the frames; by default they come as fast as they are read.
    """

    is_live = False

    def __init__(
        self, path: Path | str, *, recursive: bool = False, slideshow_fps: float | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        super().__init__(str(self.path))
        self.recursive = recursive
        self.nominal_fps = slideshow_fps
        self.files: list[Path] = []
        self._pacer = Pacer(slideshow_fps) if slideshow_fps else None
        self._index = 0

    @property
    def position(self) -> int:
        """Index of the file the next ``read()`` returns."""
        return self._index

    def open(self) -> None:
        if self._is_open:
            return
        if not self.path.exists():
            raise SourceError(f"Cannot open image folder '{self.path}': no such folder")
        if self.path.is_file():
            self.files, others = [self.path], []
        else:
            try:
                self.files, others = list_images(self.path, recursive=self.recursive)
            except OSError as exc:
                raise SourceError(f"Cannot open image folder '{self.path}': {exc.strerror or exc}") from exc
        if others:
            names = ", ".join(p.name for p in others[:_LISTED_IGNORED])
            more = f" and {len(others) - _LISTED_IGNORED} more" if len(others) > _LISTED_IGNORED else ""
            self._report(f"ignored {len(others)} file(s) that are not images by name: {names}{more}")
        if not self.files:
            suffixes = " ".join(IMAGE_SUFFIXES)
            raise SourceError(f"Image folder '{self.path}' contains no images (looked for {suffixes})")
        self._index = 0
        self._is_open = True
        log.info("opened %s", self.describe())

    def read(self) -> Frame | None:
        self._require_open()
        if self._index >= len(self.files):
            return None
        index = self._index
        path = self.files[index]
        self._index += 1
        if self._pacer is not None:
            self._pacer.wait()
        try:
            image = read_image(path, max_pixels=self.max_pixels)
        except Exception as exc:  # noqa: BLE001 — whatever one file does, the next read() goes on
            message = str(exc) if isinstance(exc, ImageReadError) else str(ImageReadError(path, f"{type(exc).__name__}: {exc}"))
            self._report(message)
            raise FrameReadError(message, path=path, frame_id=index) from exc
        return Frame(image=image, timestamp=time.time(), frame_id=index, source=str(path))

    def seek(self, index: int) -> None:
        """Make ``read()`` return file ``index`` next (0-based; clamped to the list)."""
        self._index = min(max(index, 0), len(self.files))

    def close(self) -> None:
        self._is_open = False

    def describe(self) -> str:
        kind = "Image" if self.path.is_file() else "Folder"
        if not self.files:
            return f"{kind} {self.path} (not open)"
        return f"{kind} {self.path} ({len(self.files)} image{'s' if len(self.files) != 1 else ''})"
