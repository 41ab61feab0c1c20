"""Widgets that show RGB frames (numpy arrays) scaled to fit, with zoom and pan."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


_NOTICE_FLAGS = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap


def qimage_from_rgb(image: np.ndarray) -> QImage:
    """A QImage owning a copy of an HxWx3 RGB uint8 array."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class ImageView(QWidget):
    """Shows one image fitted to the widget; the wheel zooms about the cursor, dragging pans,
    a double-click resets. ``placeholder`` is drawn when there is no image."""

    clicked_at = Signal(float, float)  # image pixel coordinates
    painted = Signal()  # a paint has finished (the capture-to-result time ends here)

    def __init__(self, placeholder: str = "", parent: QWidget | None = None, *, interactive: bool = False) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = placeholder
        self._notice = ""
        self._interactive = interactive
        self._zoom = 1.0
        self._pan = QPointF(0.0, 0.0)
        self._drag_from: QPointF | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAutoFillBackground(False)

    def set_image(self, image: np.ndarray | QImage | None) -> None:
        self._image = qimage_from_rgb(image) if isinstance(image, np.ndarray) else image
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def set_notice(self, text: str) -> None:
        """A warning drawn across the top of the image ("SOURCE STOPPED"); "" removes it."""
        if text != self._notice:
            self._notice = text
            self.update()

    def notice(self) -> str:
        return self._notice

    def notice_font(self) -> QFont:
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        return font

    def notice_strip(self) -> QRectF:
        """The band across the top the notice is drawn in: as many lines as it needs at this width
        (the live pane is narrow on a 1366-px screen, and a notice cut at both ends says nothing)."""
        width = max(self.width() - 12, 1)
        text = QFontMetrics(self.notice_font()).boundingRect(QRect(0, 0, width, 10_000), _NOTICE_FLAGS, self._notice)
        return QRectF(0, 0, self.width(), max(34, text.height() + 12))

    def has_image(self) -> bool:
        return self._image is not None

    def reset_view(self) -> None:
        self._zoom, self._pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    def _target_rect(self) -> QRectF:
        assert self._image is not None
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih) * self._zoom
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2 + self._pan.x(), (self.height() - h) / 2 + self._pan.y(), w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 26, 30))
        if self._image is None:
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.rect().adjusted(12, 0, -12, 0), _NOTICE_FLAGS, self._placeholder)  # an error: whole
        else:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom <= 2.0)
            painter.drawImage(self._target_rect(), self._image)
        if self._notice:
            painter.setFont(self.notice_font())
            strip = self.notice_strip()
            painter.fillRect(strip, QColor(179, 38, 30, 225))
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(strip.adjusted(6, 0, -6, 0), _NOTICE_FLAGS, self._notice)
        painter.end()
        self.painted.emit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if not self._interactive or self._image is None:
            return
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        new_zoom = min(max(self._zoom * factor, 1.0), 16.0)
        # keep the point under the cursor fixed
        cursor = event.position()
        centre = QPointF(self.width() / 2, self.height() / 2) + self._pan
        self._pan += (cursor - centre) * (1 - new_zoom / self._zoom)
        self._zoom = new_zoom
        if self._zoom == 1.0:
            self._pan = QPointF(0.0, 0.0)
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self._interactive and event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.position()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag_from is not None and self._zoom > 1.0:
            self._pan += event.position() - self._drag_from
            self._drag_from = event.position()
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drag_from is not None and self._image is not None:
            moved = (event.position() - self._drag_from).manhattanLength()
            if moved < 3:
                rect = self._target_rect()
                x = (event.position().x() - rect.x()) / rect.width() * self._image.width()
                y = (event.position().y() - rect.y()) / rect.height() * self._image.height()
                if 0 <= x < self._image.width() and 0 <= y < self._image.height():
                    self.clicked_at.emit(x, y)
        self._drag_from = None

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if self._interactive:
            self.reset_view()
