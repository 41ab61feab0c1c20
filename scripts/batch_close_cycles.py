"""Open a batch review from the station's window, run it, close it — N times, each in a fresh
process, so a crash at exit (a freed receiver, a QThread destroyed while running, an object
freed from the wrong thread) shows as a non-zero exit status or a fatal message on stderr.

    PYTHONPATH=$PWD python scripts/batch_close_cycles.py --cycles 50

Each cycle closes differently (the batch window mid-run, the station mid-run, the station after
the run, the batch window then the station); every question is answered "stop". Prints one
line per cycle and a summary; exits 1 if any cycle failed. Uses the tests' tiny models
(tests/helpers_review.py), offscreen.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("close-batch-mid-run", "close-station-mid-run", "close-station-after-run", "close-batch-then-station")
FATAL_MARKERS = ("Fatal Python error", "Destroyed while thread", "Segmentation fault", "refcount", "Aborted")


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", STATION_HOME=str(home), STATION_ID="cycles",
               STATION_ALLOW_UNAPPROVED_MODELS="1", PYTHONPATH=str(ROOT))
    env.pop("STATION_AUDIT_URL", None)
    return env


def prepare(workdir: Path, copies: int = 4) -> Path:
    """The review folder (the tests' synthetic packages, ``copies`` times over) and its recipe."""
    os.environ.update(_environment(workdir / "home-setup"))  # the tiny models are unapproved, on purpose
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers_review import make_review_setup

    source, names, recipe = make_review_setup(workdir / "setup")
    folder = workdir / "folder"
    folder.mkdir(exist_ok=True)
    for copy in range(copies):
        for path in source.iterdir():
            if path.is_file() and not path.name.startswith("."):
                (folder / f"{copy}-{path.name}").write_bytes(path.read_bytes())
    (workdir / "recipe.pickle").write_bytes(pickle.dumps(recipe))
    return folder


def child(mode: str, workdir: Path) -> int:
    """One cycle in this process; returns the application's exit code."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from station.config import Settings
    from station.ui import window_menus
    from station.ui.main_window import MainWindow

    recipe = pickle.loads((workdir / "recipe.pickle").read_bytes())
    app = QApplication(sys.argv[:1])
    window = MainWindow(Settings(recipe=recipe.name, device="cpu"), "CPU (cycles)", recipes={recipe.name: recipe})
    window.ask_choice = lambda title, text, choices: getattr(window_menus, "STOP_AND_QUIT", choices[0])
    window.show()
    window.open_batch_review()
    batch = window._batch_window
    batch.confirm_stop_run = lambda: True

    def close_station() -> None:
        window.close()
        app.quit()

    def on_opened(_opened) -> None:
        if mode == "close-batch-mid-run":
            batch.close()
            QTimer.singleShot(200, close_station)
        elif mode == "close-station-mid-run":
            close_station()

    def on_finished(_summary) -> None:
        if mode == "close-station-after-run":
            close_station()
        elif mode == "close-batch-then-station":
            batch.close()
            window.open_batch_review()  # a fresh one, as a technician reopening it would get
            QTimer.singleShot(100, close_station)

    batch.run_opened.connect(on_opened)
    batch.run_finished.connect(on_finished)
    batch.run_failed.connect(lambda message: (print(f"run failed: {message}", file=sys.stderr), close_station()))
    QTimer.singleShot(0, lambda: batch.open_folder(workdir / "folder", want_attention=False))
    QTimer.singleShot(120_000, lambda: (print("timed out", file=sys.stderr), close_station()))
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.workdir)
    with tempfile.TemporaryDirectory(prefix="batch-cycles-") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        failures = 0
        started = time.perf_counter()
        for cycle in range(args.cycles):
            mode = MODES[cycle % len(MODES)]
            home = workdir / f"home-{cycle}"
            begun = time.perf_counter()
            run = subprocess.run([sys.executable, __file__, "--child", mode, "--workdir", str(workdir)],
                                 env=_environment(home), capture_output=True, text=True, timeout=300)
            fatal = [line for line in run.stderr.splitlines() if any(m in line for m in FATAL_MARKERS)]
            ok = run.returncode == 0 and not fatal
            failures += not ok
            print(f"cycle {cycle + 1:2d}/{args.cycles} {mode:26s} exit {run.returncode:4d} "
                  f"{time.perf_counter() - begun:5.1f} s {'ok' if ok else 'FAILED'}", flush=True)
            if not ok:
                print("\n".join(fatal or run.stderr.splitlines()[-15:]), flush=True)
        print(f"{args.cycles - failures} of {args.cycles} cycles exited cleanly "
              f"({time.perf_counter() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
