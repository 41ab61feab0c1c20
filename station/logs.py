"""Rotating log file in the user's log dir, plus stderr for warnings."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from station import paths

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO, *, console: bool = True) -> logging.Logger:
    root = logging.getLogger("station")
    if getattr(root, "_station_configured", False):
        return root
    root.setLevel(level)
    file_handler = logging.handlers.RotatingFileHandler(
        paths.log_dir() / "station.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    # A windowed frozen app has no stderr; logging there would raise.
    if console and sys.stderr is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.WARNING)
        stream.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(stream)
    root._station_configured = True  # type: ignore[attr-defined]
    return root
