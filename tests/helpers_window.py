"""Driving a MainWindow as a technician does: sign in, start the demo camera, type the chip ID, capture."""

from __future__ import annotations

from station.workflow import Operator


def capture_demo_chip(qtbot, window, operator: Operator, chip: str = "LM358") -> None:
    """Sign ``operator`` in, show the demo camera's first frame and classify a capture of ``chip``."""
    window.sign_in(operator)
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    window.panel.chip_fields.chip.setText(chip)
    with qtbot.waitSignal(window.inspection_updated, timeout=60_000):
        window.capture_and_classify()
