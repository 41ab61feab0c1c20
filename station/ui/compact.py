"""Pieces of a column that must fit a 1366×768 screen: a one-line label that elides instead of
being cut off or widening its column (the whole text then in its tooltip), and tight group-box
margins."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QLayout, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._own_tooltip = ""

    def setToolTip(self, text: str) -> None:  # noqa: N802 — Qt's name
        self._own_tooltip = text
        super().setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(0, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        elided = shown != self.text()
        super().setToolTip("\n".join(t for t in (self.text() if elided else "", self._own_tooltip) if t))
        painter = QPainter(self)
        self.style().drawItemText(painter, rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter),
                                  self.palette(), self.isEnabled(), shown, self.foregroundRole())


def compact(layout: QLayout) -> QLayout:
    """Tight margins for a layout inside a group box (the title already spaces it)."""
    layout.setContentsMargins(6, 2, 6, 4)
    layout.setSpacing(3)
    return layout
