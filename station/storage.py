"""Storage failures in an operator's words, shared by the log file, the audit log and the batch store.

A full disk, a read-only folder or a missing permission is a problem of the station's disk,
never of the file being inspected: callers report it as such and try again later.
"""

from __future__ import annotations

import errno
import os
import shutil
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
