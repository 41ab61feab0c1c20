"""Rotating log file in the user's log dir, plus stderr for warnings.

One log file per process: the process holding ``station.log.lock`` writes (and rotates)
``station.log``; any other running at the same time (``station selftest`` beside the window, a
second window) writes ``station-<pid>.log``, since two processes rotating one file break on
Windows (WinError 32: the file is open elsewhere). Such files older than two weeks are removed.

A log folder that cannot be written (read-only data disk, full disk, no permission) never
stops the station: logging falls back to the console and says so once.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

from station import paths
from station.storage import describe_os_error

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO, *, console: bool = True) -> logging.Logger:
    root = logging.getLogger("station")
    if getattr(root, "_station_configured", False):
        return root
    root.setLevel(level)
    root._station_configured = True  # type: ignore[attr-defined]
    try:
        folder = paths.log_dir()
        folder.mkdir(parents=True, exist_ok=True)  # the reason it cannot be created, if it cannot
        file_handler = _FileHandler.in_folder(folder)
    except OSError as exc:
        _fall_back_to_console(root, f"cannot write the log file in {exc.filename or 'its folder'}: {describe_os_error(exc)}")
        return root
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    # A windowed frozen app has no stderr; logging there would raise.
    if console and sys.stderr is not None:
        root.addHandler(_console_handler(logging.WARNING))
    return root


def log_file_problem() -> str | None:
    """Why the station logs to the console only (None while its log file is written)."""
    return getattr(logging.getLogger("station"), "_log_file_problem", None)


def close_log_file() -> None:
    """Flush and close the log file (at quit: a Windows session's end leaves no time after it);
    later records go to the console, where there is one."""
    root = logging.getLogger("station")
    for handler in [h for h in root.handlers if isinstance(h, _FileHandler)]:
        root.removeHandler(handler)
        handler.close()


_PROCESS_LOG_MAX_AGE_S = 14 * 24 * 3600


class _FileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that, when a write fails (the disk filled up), falls back to the
    console once instead of printing a traceback for every record."""

    _lock_fd: int | None = None

    @classmethod
    def in_folder(cls, folder: Path) -> _FileHandler:
        """``station.log`` when this process can take its lock, else ``station-<pid>.log``."""
        lock_fd = os.open(folder / "station.log.lock", os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(lock_fd):
            os.close(lock_fd)
            return cls(folder / f"station-{os.getpid()}.log", maxBytes=5_000_000, backupCount=2, encoding="utf-8")
        try:
            handler = cls(folder / "station.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8")
        except OSError:
            os.close(lock_fd)
            raise
        handler._lock_fd = lock_fd
        _remove_old_process_logs(folder)
        return handler

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock: the next process may take station.log
            self._lock_fd = None

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        root = logging.getLogger("station")
        root.removeHandler(self)
        self.close()
        _fall_back_to_console(root, f"cannot write the log file {self.baseFilename}: {describe_os_error(exc)}")


def _fall_back_to_console(root: logging.Logger, problem: str) -> None:
    root._log_file_problem = problem  # type: ignore[attr-defined]
    if sys.stderr is None:
        return
    consoles = [h for h in root.handlers if type(h) is logging.StreamHandler]
    for handler in consoles:
        handler.setLevel(root.level)  # the console is now the only record: it gets what the file got
    if not consoles:
        root.addHandler(_console_handler(root.level))
    root.warning("%s; logging to the console only", problem)


def _console_handler(level: int) -> logging.Handler:
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(level)
    stream.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    return stream


def _try_lock(fd: int) -> bool:
    """An exclusive lock on ``fd`` for this process's life, without waiting; False when another has it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_old_process_logs(folder: Path) -> None:
    cutoff = time.time() - _PROCESS_LOG_MAX_AGE_S
    for old in folder.glob("station-*.log*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass
