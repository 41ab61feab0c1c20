"""Entry point of the frozen windowed executable ``station-gui``: always the station window
(``station gui``), so that a shortcut may pass ``--demo``, ``--source 0`` or ``--operator``."""

import multiprocessing
import sys

from station.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main(["gui", *sys.argv[1:]]))
