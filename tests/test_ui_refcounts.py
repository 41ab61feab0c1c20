"""The GUI survives PySide6's lost references to True and None (station/ui/__init__.py): a child
process emits True and calls a void method far more often than those objects have references,
which without the guard aborts it with "Fatal Python error: bool_dealloc" / "none_dealloc"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
{guard}
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QApplication, QWidget

class Emitter(QObject):
    busy = Signal(bool)
    answered = Signal(int, bool, object)

class Receiver(QObject):
    @Slot(bool)
    def on_busy(self, busy): pass
    @Slot(int, bool, object)
    def on_answered(self, ticket, ok, value): pass

app = QApplication([])
emitter, receiver, widget = Emitter(), Receiver(), QWidget()
emitter.busy.connect(receiver.on_busy)
emitter.answered.connect(receiver.on_answered)
before = sys.getrefcount(True), sys.getrefcount(None)
for i in range({rounds}):
    emitter.busy.emit(True)
    emitter.answered.emit(i, True, None)
    widget.setEnabled(True)
print("lost", before[0] - sys.getrefcount(True), before[1] - sys.getrefcount(None))
del emitter, receiver, widget, app
"""


def _run(guard: str, rounds: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", CHILD.format(guard=guard, rounds=rounds)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_lost_references_to_true_and_none_do_not_abort_the_station():
    guarded = _run("import station.ui", 50_000)
    assert guarded.returncode == 0, guarded.stderr[-2000:]
    assert "Fatal Python error" not in guarded.stderr
