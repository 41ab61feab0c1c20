"""Windows open inside the screen they appear on: a bench monitor is often 1366×768, and a
window (or dialog) taller than the screen puts its buttons where nobody can reach them."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

# the window manager's frame (title bar, borders) is unknown until the window is shown
FRAME_ALLOWANCE = QSize(16, 40)


def available_geometry(widget: QWidget) -> QRect:
    """Where ``widget`` may go: its parent window's screen (or its own, or the primary one) less
    task bars and docks."""
    anchor = widget.parentWidget().window() if widget.parentWidget() is not None else widget
    screen = anchor.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(widget: QWidget, preferred: QSize | None = None) -> bool:
    """Resize ``widget`` to ``preferred`` (its size hint when None), no larger than the available
    screen, and move it inside the screen, over its parent when it has one. Returns True when
    the screen was smaller than ``preferred`` (a main window is then best shown maximized)."""
    available = available_geometry(widget)
    room = available.size() - FRAME_ALLOWANCE
    wanted = preferred if preferred is not None else widget.sizeHint()
    wanted = wanted.expandedTo(widget.minimumSizeHint()) if preferred is None else wanted
    size = wanted.boundedTo(room)
    widget.resize(size)
    parent = widget.parentWidget()
    centre = parent.window().frameGeometry().center() if parent is not None else available.center()
    frame = QRect(0, 0, size.width() + FRAME_ALLOWANCE.width(), size.height() + FRAME_ALLOWANCE.height())
    frame.moveCenter(centre)
    frame.moveLeft(max(available.left(), min(frame.left(), available.right() - frame.width() + 1)))
    frame.moveTop(max(available.top(), min(frame.top(), available.bottom() - frame.height() + 1)))
    widget.move(frame.topLeft())
    return wanted.width() > room.width() or wanted.height() > room.height()


def keep_on_screen(widget: QWidget) -> None:
    """After a layout change (a batch run filled a table): shrink back inside the screen if it grew."""
    available = available_geometry(widget)
    room = available.size() - FRAME_ALLOWANCE
    if widget.width() > room.width() or widget.height() > room.height():
        widget.resize(widget.size().boundedTo(room))
    frame = widget.frameGeometry()
    if not available.contains(frame):
        frame.moveLeft(max(available.left(), min(frame.left(), available.right() - frame.width() + 1)))
        frame.moveTop(max(available.top(), min(frame.top(), available.bottom() - frame.height() + 1)))
        widget.move(frame.topLeft())
