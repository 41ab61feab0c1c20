"""Driving a MainWindow as a technician does: sign in, start the demo camera, type the chip ID, capture."""

from __future__ import annotations

import contextlib

from station.workflow import Operator


@contextlib.contextmanager
def awaiting_result(qtbot, window, timeout: int = 60_000):
    """Until the capture started inside has its result or its error. ``inspection_updated`` alone
    does not say which: it also fires for each audit record, and a sign-in's record may land late."""
    yield
    qtbot.waitUntil(lambda: window.inspection is not None
                    and (window.inspection.result is not None or window.inspection.error is not None),
                    timeout=timeout)


def capture_demo_chip(qtbot, window, operator: Operator, chip: str = "LM358") -> None:
    """Sign ``operator`` in, show the demo camera's first frame and classify a capture of ``chip``."""
    window.sign_in(operator)
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    window.panel.chip_fields.chip.setText(chip)
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
