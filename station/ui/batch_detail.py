"""One batch item in full: the image with Capture & Classify's overlays and controls (attention
map, opacity, boxes, score threshold, zoom and pan), its result panel, and the verdict buttons."""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from station.inference import AttentionMaps, InspectionResult
from station.review.store import ItemRecord
from station.ui.image_view import ImageView
from station.ui.compact import ElidedLabel
from station.ui.result_panel import OverlayControls, ResultPanel


class BatchDetailView(QWidget):
    accept_clicked = Signal()
    override_clicked = Signal()

    def __init__(self, um_per_px: float | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.um_per_px = um_per_px
        self.title = ElidedLabel("")  # a deep path must not widen the window past the screen
        self.title.setObjectName("batchDetailTitle")
        self.title.setStyleSheet("font-weight:bold;")
        self.notice = QLabel("")
        self.notice.setObjectName("batchDetailNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color:#a15c00;")
        self.image_view = ImageView("Select an image in the table", interactive=True)
        self.overlay_controls = OverlayControls(rows=2)
        self.results = ResultPanel()
        self.accept_button = QPushButton("Accept (A)")
        self.accept_button.setObjectName("batchAcceptButton")
        self.override_button = QPushButton("Override… (O)")
        self.override_button.setObjectName("batchOverrideButton")
        self.accept_button.clicked.connect(self.accept_clicked)
        self.override_button.clicked.connect(self.override_clicked)
        self.review_label = QLabel("")
        self.review_label.setObjectName("batchReviewLabel")
        self.review_label.setWordWrap(True)
        self.review_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        image_column = QWidget()
        image_layout = QVBoxLayout(image_column)
        image_layout.setContentsMargins(0, 0, 0, 0)
        image_layout.addWidget(self.title)
        image_layout.addWidget(self.image_view, 1)
        image_layout.addWidget(self.overlay_controls)
        image_layout.addWidget(self.notice)
        side = QWidget()
        side.setMinimumWidth(280)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.results, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.override_button)
        side_layout.addLayout(buttons)
        side_layout.addWidget(self.review_label)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(image_column)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self.record: ItemRecord | None = None
        self.result: InspectionResult | None = None
        self._image: np.ndarray | None = None
        self.overlay_controls.changed.connect(self._render)
        self.results.defect_selected.connect(lambda _row: self._render())
        self.show_record(None)

    @property
    def item_id(self) -> int | None:
        return None if self.record is None else self.record.row.item_id

    @property
    def has_image(self) -> bool:
        return self._image is not None

    def _shows(self, record: ItemRecord) -> bool:
        """Whether ``record`` is the item on screen, with the same content and maps."""
        current = self.record
        return (
            current is not None and current.row.item_id == record.row.item_id
            and current.row.sha256 == record.row.sha256 and current.has_maps == record.has_maps
        )

    def needs_image(self, record: ItemRecord) -> bool:
        """Whether showing ``record`` needs its image (again): another item, or new content or maps."""
        return self._image is None or not self._shows(record)

    def show_record(self, record: ItemRecord | None) -> None:
        """Show ``record``'s stored result now; its image follows with :meth:`set_image`."""
        same_item = record is not None and self._shows(record)
        self.record = record
        if not same_item:
            self._image = None
            self.image_view.set_image(None)
            self.image_view.reset_view()
        self.notice.setText("")
        if record is None:
            self.title.setText("")
            self.result = None
            self.results.clear("—")
            self.image_view.set_placeholder("Select an image in the table")
            self.review_label.setText("")
            return
        row = record.row
        self.title.setText(row.relative_path)
        if record.result is None:
            self.result = None
            self.results.clear("error" if row.is_error else "not inspected yet")
            self.image_view.set_placeholder(row.error or "Not inspected yet")
        else:
            attention = self.result.attention if same_item and self.result is not None else None
            self.result = dataclasses.replace(record.result, attention=attention)
            threshold = self.result.thresholds.get("uncertain_below", 0.0)
            self.results.show_result(self.result, threshold, self.um_per_px)
            self.image_view.set_placeholder("Loading the image…")
        self.review_label.setText(_review_text(record))
        self._render()

    def set_image(self, item_id: int, image: np.ndarray, attention: AttentionMaps | None, changed: bool) -> None:
        if item_id != self.item_id:
            return
        self._image = image
        if self.result is not None:
            self.result = dataclasses.replace(self.result, attention=attention)
        has_maps = attention is not None and (attention.material is not None or attention.defects is not None)
        self.overlay_controls.attention.setEnabled(has_maps)
        self.overlay_controls.attention.setToolTip(
            "" if has_maps else "No attention map for this image: inspect the folder with attention maps on"
        )
        if changed:
            self.notice.setText("This file changed on disk since it was inspected; the overlay may not match it.")
        self._render()

    def show_load_error(self, item_id: int, message: str) -> None:
        if item_id == self.item_id:
            self.image_view.set_placeholder(message)

    def set_decisions_enabled(self, accept: bool, override: bool, why: str = "") -> None:
        self.accept_button.setEnabled(accept)
        self.override_button.setEnabled(override)
        for button in (self.accept_button, self.override_button):
            button.setToolTip("" if button.isEnabled() else why)

    def _render(self) -> None:
        self.overlay_controls.show_map_note(self.result if self._image is not None else None)
        if self._image is None:
            return
        if self.result is None:
            self.image_view.set_image(self._image)
            return
        from station.render import SCREEN_LONG_SIDE, compose_overlay

        selected = self.results.selected_defect()
        options = self.overlay_controls.options()
        if not self.overlay_controls.attention.isEnabled():
            options["show_attention"] = False
        self.image_view.set_image(
            compose_overlay(self._image, self.result, highlight_index=selected if selected >= 0 else None,
                            upscale_to=SCREEN_LONG_SIDE, **options)
        )


def _review_text(record: ItemRecord) -> str:
    row = record.row
    if row.is_error:
        return f"Error: {row.error}"
    if not row.is_reviewed:
        return "Not reviewed yet." if row.is_done else ""
    text = f"{row.status_text.capitalize()} by {record.reviewed_by} at {record.reviewed_at} — record #{row.audit_entry_id}"
    if record.review_reason:
        text += f"\nReason: {record.review_reason}"
    return text
