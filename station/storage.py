"""Storage failures in an operator's words, shared by the log file, the audit log and the batch store.

A full disk, a read-only folder or a missing permission is a problem of the station's disk,
never of the file being inspected: callers report it as such and try again later.
"""

from __future__ import annotations

import errno
import ntpath
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath, PureWindowsPath
from urllib.parse import quote

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


# -- network drives ---------------------------------------------------------------------------------

# /proc/mounts file system types that live on another machine
_NETWORK_FILE_SYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "ceph", "glusterfs", "fuse.glusterfs", "lustre", "afs",
    "9p", "davfs", "fuse.davfs2",
})
_MOUNTS = Path("/proc/mounts")
_DRIVE_REMOTE = 4  # GetDriveTypeW: a mapped network drive


def is_network_path(path: Path | str) -> bool:
    """Whether ``path`` is on another machine: a UNC path (``\\\\server\\share\\...``), a mapped
    network drive (Windows: ``GetDriveTypeW`` says DRIVE_REMOTE) or an NFS/SMB mount (Linux:
    its file system type in /proc/mounts). A path whose disk cannot be told counts as local."""
    text = os.fspath(path)
    if sys.platform == "win32" or _is_unc(text):
        return _is_unc(text) or _windows_drive_type(_drive_root(text)) == _DRIVE_REMOTE
    return _mount_type(text) in _NETWORK_FILE_SYSTEMS


def _is_unc(text: str) -> bool:
    """``\\\\server\\share`` or ``\\\\?\\UNC\\server\\share``; not ``\\\\?\\C:\\`` or a device (``\\\\.\\``)."""
    text = text.replace("/", "\\")
    if text[:8].upper() == "\\\\?\\UNC\\":
        return True
    return text.startswith("\\\\") and not text.startswith(("\\\\?\\", "\\\\.\\"))


def _drive_root(text: str) -> str:
    drive = ntpath.splitdrive(ntpath.abspath(text) if sys.platform == "win32" else text)[0]
    return drive.removeprefix("\\\\?\\") + "\\"


def _windows_drive_type(root: str) -> int:
    import ctypes

    try:
        return int(ctypes.windll.kernel32.GetDriveTypeW(root))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return 0  # DRIVE_UNKNOWN


def _mount_type(text: str) -> str:
    """The file system type of the mount holding ``text`` ("" when /proc/mounts cannot be read)."""
    try:
        lines = _MOUNTS.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    target = os.path.realpath(text)
    best, kind = "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts writes a space in a mount point as \040
        mount_point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[2]
    return kind


def sqlite_uri(path: PurePath | str, query: str = "") -> str:
    """A ``file:`` URI SQLite opens for ``path``, percent-escaped (``?``, ``#``, ``%``, spaces).

    ``Path.as_uri`` turns ``\\\\server\\share\\log.sqlite3`` (and a mapped drive, which ``resolve``
    makes UNC) into ``file://server/share/...``, which SQLite refuses (it takes no host): a UNC
    path here has an empty authority and the ``//server/share`` path Windows opens,
    ``file:////server/share/log.sqlite3``. ``path`` should be absolute."""
    windows = isinstance(path, PureWindowsPath) or (not isinstance(path, PurePath) and sys.platform == "win32")
    if windows:
        text = str(PureWindowsPath(path)).replace("\\", "/")
        if text.startswith("//?/UNC/"):
            text = "//" + text[len("//?/UNC/"):]
        elif text.startswith("//?/"):
            text = text[len("//?/"):]
        if text.startswith("//"):
            location = "//" + quote(text, safe="/")  # file: + // (no host) + //server/share/...
        else:
            location = "///" + quote(text, safe="/:")  # file:///C:/...
    else:
        location = "//" + quote(os.fspath(path), safe="/")
    return f"file:{location}" + (f"?{query}" if query else "")
