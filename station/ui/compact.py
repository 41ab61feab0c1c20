"""Pieces of a window that must fit a 1366×768 screen: a one-line label that elides instead of
being cut off or widening its column (the whole text then in its tooltip), the status bar's
permanent labels, and tight group-box margins."""

from __future__ import annotations

from PySide6.QtCore import QObject, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QLayout, QSizeGrip, QSizePolicy, QStatusBar, QWidget


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


class StatusLabel(ElidedLabel):
    """A permanent label of a status bar: as wide as its text up to ``widest`` characters, narrowed
    down to ``narrowest`` when the bar is short of room, elided then (the whole text in its tooltip).
    A plain QLabel claims its whole text, and the bar pushes the last one off the right edge. Qt
    narrows the labels of a short bar by equal amounts, each down to its ``narrowest``, so a label
    that must stay whole gets a ``narrowest`` as long as its longest text."""

    def __init__(self, text: str = "", narrowest: int = 12, widest: int = 60, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.narrowest = narrowest
        self.widest = widest
        self._room_px: int | None = None  # while it gives way to a message (MessageRoom)

    def give_way(self, room_px: int | None) -> None:
        if room_px != self._room_px:
            self._room_px = room_px
            self.updateGeometry()

    def _chars(self, count: int) -> int:
        margins = self.contentsMargins()
        return self.fontMetrics().averageCharWidth() * count + margins.left() + margins.right()

    def natural_width(self) -> int:
        return min(QLabel.sizeHint(self).width(), self._chars(self.widest))

    def narrowest_width(self) -> int:
        return min(QLabel.sizeHint(self).width(), self._chars(self.narrowest))

    def sizeHint(self) -> QSize:  # noqa: N802
        width = self.natural_width()
        if self._room_px is not None:
            width = max(self.narrowest_width(), min(width, self._room_px))
        return QSize(width, QLabel.sizeHint(self).height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.narrowest_width(), QLabel.sizeHint(self).height())


class MessageRoom(QObject):
    """While ``bar`` shows a temporary message (Qt cuts one off, it never wraps), the ``yielding``
    labels narrow just as far as the message needs, the first one first, each down to its
    ``narrowest``; the ``others`` (the rest of the bar's permanent widgets) keep their width."""

    MESSAGE_MARGIN_PX = 24  # QStatusBar's message inset on both sides, and a little air

    def __init__(self, bar: QStatusBar, yielding: list[StatusLabel], others: list[QWidget]) -> None:
        super().__init__(bar)
        self.bar = bar
        self.yielding = yielding
        self.others = others
        bar.messageChanged.connect(self._on_message)

    def _on_message(self, message: str) -> None:
        if not message:
            for label in self.yielding:
                label.give_way(None)
            return
        spacing = max(self.bar.layout().spacing(), 0) * (len(self.yielding) + len(self.others))
        needed = self.bar.fontMetrics().horizontalAdvance(message) + self.MESSAGE_MARGIN_PX
        kept = sum(widget.sizeHint().width() for widget in (*self.others, self.bar.findChild(QSizeGrip))
                   if widget is not None and widget.isVisible())
        excess = needed + kept + spacing + sum(label.natural_width() for label in self.yielding) - self.bar.width()
        for label in self.yielding:
            cut = max(0, min(excess, label.natural_width() - label.narrowest_width()))
            label.give_way(label.natural_width() - cut if cut else None)
            excess -= cut


def compact(layout: QLayout) -> QLayout:
    """Tight margins for a layout inside a group box (the title already spaces it)."""
    layout.setContentsMargins(6, 2, 6, 4)
    layout.setSpacing(3)
    return layout
