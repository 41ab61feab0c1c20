"""Which files of a folder a batch review covers.

Every file whose name says "image" (``station.capture.images.IMAGE_SUFFIXES``) is inspected;
every other visible file is listed too, as an error ("unsupported file type"), so the operator
sees everything the folder holds. Hidden files and the usual system litter are left out: dot-files,
Thumbs.db and desktop.ini, a drive's ``$RECYCLE.BIN`` and ``System Volume Information``, and on
Windows whatever has the hidden or system attribute (or lies in a folder that has).
Paths are kept relative to the folder (POSIX separators), so a folder that is moved or mounted
elsewhere keeps its review.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from station.capture.folder import list_images

_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
# a drive root's recycle bin and restore points (also on a Windows stick read elsewhere)
_SYSTEM_FOLDERS = frozenset({"$recycle.bin", "recycler", "system volume information", "$windows.~bt", "found.000"})
_HIDDEN_OR_SYSTEM = 0x2 | 0x4  # FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM


class FolderScanError(OSError):
    """The folder cannot be listed; the message names it."""


@dataclass(frozen=True)
class ScannedFile:
    relative_path: str  # POSIX separators, relative to the scanned folder
    size: int
    mtime_ns: int
    supported: bool  # an image by name; False: listed as an error, never decoded


@dataclass(frozen=True)
class FolderScan:
    folder: Path
    recursive: bool
    files: tuple[ScannedFile, ...]  # images first in natural order, then the unsupported ones

    @property
    def n_images(self) -> int:
        return sum(1 for f in self.files if f.supported)


def _is_listed(path: Path, folder: Path, hidden_folders: dict[Path, bool]) -> bool:
    """Not a dot-file, system litter, or (on Windows) a file or folder with the hidden or system
    attribute, nor inside one; ``hidden_folders`` caches the folders' answers for one scan."""
    relative = path.relative_to(folder)
    if any(part.startswith(".") for part in relative.parts) or path.name.lower() in _SYSTEM_FILES:
        return False
    if any(part.lower() in _SYSTEM_FOLDERS for part in relative.parts[:-1]):
        return False
    if sys.platform != "win32":
        return True
    inner = folder
    for part in relative.parts[:-1]:
        inner = inner / part
        if inner not in hidden_folders:
            hidden_folders[inner] = bool(_file_attributes(inner) & _HIDDEN_OR_SYSTEM)
        if hidden_folders[inner]:
            return False
    return not _file_attributes(path) & _HIDDEN_OR_SYSTEM


def _file_attributes(path: Path) -> int:
    try:
        return getattr(os.lstat(path), "st_file_attributes", 0)  # Windows only
    except OSError:
        return 0


def scan_folder(folder: Path | str, *, recursive: bool = False) -> FolderScan:
    """The files of ``folder`` (and its subfolders when ``recursive``), with size and mtime."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FolderScanError(f"Cannot review '{folder}': not a folder")
    try:
        images, others = list_images(folder, recursive=recursive)
    except OSError as exc:
        raise FolderScanError(f"Cannot list the folder '{folder}': {exc.strerror or exc}") from exc
    files: list[ScannedFile] = []
    hidden_folders: dict[Path, bool] = {}
    for supported, group in ((True, images), (False, others)):
        for path in group:
            if not _is_listed(path, folder, hidden_folders):
                continue
            try:
                stat = path.stat()
            except OSError:
                try:
                    stat = path.lstat()  # a dangling or looping link: listed, and the runner says which
                except OSError:
                    continue  # vanished between listing and stat: not part of this scan
            files.append(ScannedFile(path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns, supported))
    return FolderScan(folder, recursive, tuple(files))


def absolute_path(folder: Path, relative_path: str) -> Path:
    return folder / Path(*relative_path.split("/"))


def unsupported_reason(relative_path: str) -> str:
    suffix = os.path.splitext(relative_path)[1]
    kind = f"'{suffix}'" if suffix else "without a suffix"
    return f"unsupported file type {kind} (not an image by its name)"
