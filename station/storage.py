"""Storage failures in an operator's words, shared by the log file, the audit log and the batch store.

A full disk, a read-only folder or a missing permission is a problem of the station's disk,
never of the file being inspected: callers report it as such and try again later.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# free space under which a vague SQLite "disk I/O error" is taken for what it nearly always is
_NEARLY_FULL_BYTES = 1 << 20

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the disk is read-only",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.EIO: "a disk I/O error occurred",
}

STORAGE_ERRNOS = frozenset(_REASONS)


def describe_os_error(exc: OSError) -> str:
    """"the disk is full", "the disk is read-only", ... or the system's own words."""
    return _REASONS.get(exc.errno, exc.strerror or str(exc))


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the station's own disk failed (full, read-only, no permission, I/O)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def disk_is_full(path: Path | str) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has no room left."""
    folder = Path(path)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def is_writable_folder(path: Path | str) -> bool:
    """Whether new files can be created in ``path`` (read-only mounts count, even for root)."""
    return os.access(path, os.W_OK | os.X_OK)


# -- files written for people: exports and reports ----------------------------------------------


class OutputFileError(OSError):
    """An export or report could not be written under its name. The message names the file, says
    why and what to do; ``kept`` is where the new content was saved instead (None: nowhere)."""

    def __init__(self, message: str, path: Path, kept: Path | None = None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.kept = kept

    def __str__(self) -> str:
        return self.args[0]


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """Write a file for people (CSV, JSON, PDF) to the temporary path this yields; on leaving the
    block it replaces ``path`` in one step, so a reader never sees half a file.

    When ``path`` cannot be replaced (on Windows: open in Excel or Acrobat, or read-only) nothing is
    lost: the new content is kept under the next free name (``report (2).csv``) and
    ``OutputFileError`` says so. A folder that cannot be written raises ``OutputFileError`` too.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_storage_error(exc) and not isinstance(exc, OutputFileError):
            raise OutputFileError(
                f"cannot write {path}: {describe_os_error(exc)} in the folder {path.parent}; "
                "choose another folder", path
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp, path)
    except (PermissionError, IsADirectoryError) as exc:
        kept = _keep_aside(tmp, path)
        raise OutputFileError(_why_not_replaced(path, kept), path, kept) from exc


def _why_not_replaced(path: Path, kept: Path | None) -> str:
    if path.is_dir():
        problem = f"{path} is a folder; give a file name"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = f"{path} is read-only: clear its read-only attribute (Properties) or choose another name"
    else:
        # Windows refuses to replace a file another program holds open (WinError 32 or 5)
        problem = f"{path} is open in another program (Excel, Acrobat, a viewer?): close it there and try again"
    saved = f"; the new content is saved as {kept}" if kept is not None else "; the new content could not be kept"
    return f"cannot write {path.name}: {problem}{saved}"


def _keep_aside(tmp: Path, path: Path) -> Path | None:
    """Rename the finished temporary file to ``path``'s first free sibling name ``stem (N).suffix``."""
    for n in range(2, 100):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if candidate.exists():
            continue
        try:
            os.replace(tmp, candidate)
            return candidate
        except OSError:
            break
    return tmp if tmp.exists() else None


def output_file(out: Path | str, default_name: str) -> Path:
    """``out`` itself, or ``out/default_name`` when ``out`` is a folder (a drive root ``E:\\`` too)."""
    out = Path(out)
    return out / default_name if out.is_dir() or not out.name else out
