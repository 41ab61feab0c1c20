"""Lossless, content-addressed copies of the images audit entries refer to.

An image is stored as PNG at ``<archive>/<sha[:2]>/<sha>.png`` where ``sha`` is the sha256 of
the PNG file's bytes, so ``sha256sum`` of an archived file equals its name and the
``image_sha256`` of its entries. The same frame archived twice is stored once (PNG encoding is
deterministic for a given OpenCV build). The file is written to a temporary name, fsynced,
made read-only, renamed into place and its folder fsynced: after a crash it is either complete
or absent (a stray ``.*.tmp`` file at worst, removed by :func:`remove_stray_temporaries` when
a writer next opens the log).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from station.audit.db import write_error
from station.audit.entry import AuditWriteError
from station.storage import describe_os_error

log = logging.getLogger(__name__)

_PNG_COMPRESSION = 3  # zlib level: lossless at any level; 3 is fast with nearly the smallest files


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an HxWx3 RGB uint8 image (ValueError naming the bad shape or dtype)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"an archived image must be an HxWx3 RGB uint8 array, got shape {shape} dtype {dtype}")
    import cv2

    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as PNG")
    return buffer.tobytes()


def archive_image(rgb: np.ndarray, archive_dir: Path) -> tuple[str, Path]:
    """Store ``rgb`` losslessly under ``archive_dir``; returns ``(sha256, path)``.

    Raises ``AuditWriteError`` when the file cannot be written durably (disk full, read-only).
    """
    png = encode_png(rgb)
    sha = hashlib.sha256(png).hexdigest()
    target = Path(archive_dir) / sha[:2] / f"{sha}.png"
    if target.is_file():
        return sha, target
    tmp = target.with_name(_temporary_name(sha))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            view = memoryview(png)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o444)
        try:
            os.replace(tmp, target)
        except PermissionError:
            # Windows refuses to replace a read-only file: another writer archived the same frame
            # first, and the name is the content's hash, so its copy is this one.
            if not target.is_file():
                raise
            _remove_read_only(tmp)
            return sha, target
        _fsync_dir(target.parent)
        _fsync_dir(target.parent.parent)
    except OSError as exc:
        _remove_read_only(tmp)
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            raise AuditWriteError(
                f"could not archive the image in {target.parent}: the image archive folder is read-only "
                f"({describe_os_error(exc)}); give the station's users modify rights on {Path(archive_dir)} "
                f"or check the data disk ({type(exc).__name__}: {exc})"
            ) from exc
        raise write_error(target, exc, "archive the image") from exc
    return sha, target


def _remove_read_only(path: Path) -> None:
    try:
        path.chmod(0o644)  # Windows refuses to delete a read-only file
        path.unlink()
    except OSError:
        pass


def _temporary_name(sha: str) -> str:
    return f".{sha}.{os.getpid()}.{threading.get_ident()}.tmp"


# a temporary file this old is left over whoever wrote it (writing one takes milliseconds)
_STALE_TEMPORARY_S = 600.0


def remove_stray_temporaries(archive_dir: Path) -> int:
    """Delete the ``.*.tmp`` files a killed writer left in the archive; returns how many.

    Only files of processes no longer running (or older than ten minutes) are removed, so a
    second station process archiving at this moment keeps its file. Never raises: a folder that
    cannot be cleaned (read-only) is left as it is.
    """
    removed = 0
    now = time.time()
    for temporary in Path(archive_dir).glob("*/.*.tmp"):
        try:
            if _writer_is_running(temporary.name) and now - temporary.stat().st_mtime < _STALE_TEMPORARY_S:
                continue
            temporary.chmod(0o644)  # Windows refuses to delete a read-only file
            temporary.unlink()
            removed += 1
        except OSError as exc:
            log.debug("cannot remove %s: %s", temporary, exc)
    if removed:
        log.warning("removed %d unfinished temporary file(s) from the image archive %s", removed, archive_dir)
    return removed


def _writer_is_running(name: str) -> bool:
    parts = name.split(".")  # "", sha, pid, thread, "tmp"
    if os.name != "posix" or len(parts) != 5 or not parts[2].isdigit():
        return True  # cannot tell: rely on the file's age
    pid = int(parts[2])
    if pid == os.getpid():
        return True  # another thread of ours may be writing it: rely on its age
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename or a new folder durable (POSIX; Windows has no directory handles to sync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def image_status(image_sha256: str | None, image_path: str | Path | None) -> str:
    """"" when the entry has no image, else "ok", "missing" or "altered" (its bytes no longer hash to the record).

    ``image_path`` is the file itself: a recorded path relative to the data folder is resolved
    by ``AuditLog.image_file`` first.
    """
    if not image_sha256 and not image_path:
        return ""
    if not image_path:
        return "missing"
    try:
        data = Path(image_path).read_bytes()
    except OSError:
        return "missing"
    return "ok" if hashlib.sha256(data).hexdigest() == image_sha256 else "altered"
