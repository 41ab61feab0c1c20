"""Capture-to-result latency in the real station window, as a technician meets it.

    STATION_HOME=/tmp/latency-home PYTHONPATH=$PWD python scripts/capture_latency.py --captures 50

Composes the window as ``station --demo --operator demo-tech`` does (the bundled demo recipe, the
simulated microscope running in the live view, the demo technician signed in), then per capture:
a new chip ID typed, the Capture & Classify button clicked, and the window's ``inspection_updated``
(result applied) and ``capture_painted`` (result painted in the captured view) waited for. Prints
click → result applied and click → result painted, p50/p95/max in ms over the captures after the
first, and the first (the models' warm-up) apart; ``--profile FILE`` writes a cProfile of the
captures. Runs under any Qt platform: a display (Xvfb) or ``QT_QPA_PLATFORM=offscreen``.
Use a throw-away STATION_HOME: the demo accounts and every capture's record land there.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Slot  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

WAIT_MS = 120_000


class Stopwatch(QObject):
    """Time from ``start`` to the window's result signals (slots on the GUI thread)."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.started = 0.0
        self.applied_ms: float | None = None
        self.painted_ms: float | None = None
        self.window_ms: float | None = None  # the figure the panel shows
        self.loop: QEventLoop | None = None

    def start(self) -> None:
        self.applied_ms = self.painted_ms = self.window_ms = None
        self.started = time.perf_counter()

    @Slot()
    def on_applied(self) -> None:
        inspection = self.window.inspection
        if self.applied_ms is None and inspection is not None and inspection.result is not None:
            self.applied_ms = (time.perf_counter() - self.started) * 1000

    @Slot(float)
    def on_painted(self, window_ms: float) -> None:
        self.painted_ms = (time.perf_counter() - self.started) * 1000
        self.window_ms = window_ms
        if self.loop is not None:
            self.loop.quit()

    @Slot()
    def on_timeout(self) -> None:
        if self.loop is not None:
            self.loop.quit()


class Poll(QObject):
    """Runs an event loop until ``condition()`` holds, checked by a timer on the GUI thread."""

    def __init__(self, condition, timeout_ms: int) -> None:
        super().__init__()
        self.condition = condition
        self.deadline = time.monotonic() + timeout_ms / 1000
        self.loop = QEventLoop()
        self.timer = QTimer()
        self.timer.timeout.connect(self.check)

    @Slot()
    def check(self) -> None:
        if self.condition() or time.monotonic() > self.deadline:
            self.timer.stop()
            self.loop.quit()

    def run(self) -> bool:
        if not self.condition():
            self.timer.start(20)
            self.loop.exec()
        return bool(self.condition())


def wait_until(condition, timeout_ms: int = WAIT_MS) -> None:
    if not Poll(condition, timeout_ms).run():
        raise SystemExit("timed out waiting for the window (models or source not ready)")


def open_window(device: str):
    from station import app as station_app
    from station.audit import AuditSetup
    from station.config import load_settings
    from station.ui.main_window import MainWindow

    settings = load_settings()
    settings.device = device
    settings.camera.source = "demo"
    audit = AuditSetup.from_settings(settings)
    station_app._prepare_demo_station(settings, audit)
    plan = station_app._sign_in_plan(settings, audit, argparse.Namespace(operator="demo-tech", demo=True))
    if plan.get("user") is None:
        raise SystemExit("the demo technician could not be signed in")
    window = MainWindow(settings, f"{device} (latency script)", recipes=station_app._recipes(), audit=audit)
    window.show_fitted()
    window.start_source("demo")
    window.sign_in_user(plan["user"])
    wait_until(lambda: window._recipe is not None and window.latest_frame is not None and window.operator is not None)
    return window


def capture_once(window, stopwatch: Stopwatch, number: int) -> None:
    window.panel.chip_fields.chip.setText(f"LAT-{number:04d}")  # a new part: the last result is dropped
    wait_until(lambda: window.panel.capture_button.isEnabled(), 10_000)
    stopwatch.loop = QEventLoop()
    timeout = QTimer()
    timeout.setSingleShot(True)
    timeout.timeout.connect(stopwatch.on_timeout)
    timeout.start(WAIT_MS)
    stopwatch.start()
    QTest.mouseClick(window.panel.capture_button, Qt.MouseButton.LeftButton)
    if stopwatch.painted_ms is None:
        stopwatch.loop.exec()
    timeout.stop()
    if stopwatch.painted_ms is None:
        raise SystemExit(f"capture {number}: no result painted in {WAIT_MS // 1000} s "
                         f"({window.inspection.error if window.inspection else 'no inspection'})")


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{name}: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the captures (after the first)")
    args = parser.parse_args(argv)
    if "STATION_HOME" not in os.environ:
        raise SystemExit("set STATION_HOME to a throw-away folder: the demo accounts and records land there")

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = open_window(args.device)
    stopwatch = Stopwatch(window)
    window.inspection_updated.connect(stopwatch.on_applied)
    window.capture_painted.connect(stopwatch.on_painted)
    import torch

    print(f"platform {app.platformName()}, torch threads {torch.get_num_threads()}, "
          f"window {window.width()}x{window.height()}, recipe {window._recipe.name}")
    rows = []
    profiler = cProfile.Profile() if args.profile else None
    for number in range(args.captures):
        if profiler is not None and number == 1:
            profiler.enable()
        capture_once(window, stopwatch, number)
        rows.append((stopwatch.applied_ms, stopwatch.painted_ms, stopwatch.window_ms))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    engine = window.inspection.result.timings_ms if window.inspection and window.inspection.result else {}
    window.close()
    app.processEvents()

    first, rest = rows[0], rows[1:]
    print(f"first capture (warm-up): click → result applied {first[0]:.1f} ms, painted {first[1]:.1f} ms")
    if rest:
        print(summary(f"click → result applied ({len(rest)} captures)", [r[0] for r in rest]))
        print(summary(f"click → result painted ({len(rest)} captures)", [r[1] for r in rest]))
        print(summary("window's own capture → painted figure", [r[2] for r in rest]))
    print("last capture's engine timings (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in engine.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
