"""What the screen says about the captured chip: the banner (the decision as recorded), material
call, confidence chart, decapsulation method, the defect list, and overlay controls."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from station.ui.compact import ElidedLabel, StatusLabel, compact
from station.workflow import InspectionView, Tone, display_name, result_view

_BANNER_BASE = "color:white;font-size:17px;font-weight:bold;padding:4px 6px;border-radius:4px;"
_BANNER_DETAIL_PX = 12
BANNER_DETAIL_LINES = 2  # more (several image problems) go in the tooltip: the column must fit 768 px
BANNER_COLOURS = {  # one colour per kind of answer; the text says it too, for colour-blind eyes
    Tone.INFO: "#44505c",
    Tone.CONFIDENT: "#1e6b34",
    Tone.TO_PERSON: "#b3261e",
    Tone.OVERRIDDEN: "#6a3fb5",
    Tone.HOLD: "#b3261e",
    Tone.DONE: "#5f6b77",
}


class ConfidenceChart(pg.PlotWidget):
    """Calibrated probability per material as horizontal-ish bars (pyqtgraph)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, background=None)
        self.setFixedHeight(74)
        self.setMinimumWidth(170)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setYRange(0, 1, padding=0.02)
        tick_font = QFont()
        tick_font.setPixelSize(10)
        for side in ("left", "bottom"):
            self.getPlotItem().getAxis(side).setStyle(tickFont=tick_font)
        self.getPlotItem().getAxis("left").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
        self._bars: pg.BarGraphItem | None = None
        self._threshold = pg.InfiniteLine(angle=0, pen=pg.mkPen("#b3261e", style=Qt.PenStyle.DashLine))
        self.addItem(self._threshold)

    def show_probabilities(self, classes: tuple[str, ...], probabilities: tuple[float, ...], threshold: float) -> None:
        if self._bars is not None:
            self.removeItem(self._bars)
        best = int(np.argmax(probabilities))
        brushes = ["#2f7dd1" if i == best else "#8aa4c0" for i in range(len(classes))]
        self._bars = pg.BarGraphItem(x=np.arange(len(classes)), height=np.asarray(probabilities), width=0.6, brushes=brushes)
        self.addItem(self._bars)
        self.getPlotItem().getAxis("bottom").setTicks([list(enumerate(classes))])
        self.setXRange(-0.5, len(classes) - 0.5, padding=0.02)
        self._threshold.setValue(threshold)
        self.show()

    def clear_bars(self) -> None:
        if self._bars is not None:
            self.removeItem(self._bars)
            self._bars = None
        self.hide()


class OverlayControls(QWidget):
    """Attention map on/off and which one, opacity, boxes on/off, score threshold."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, rows: int = 1) -> None:
        super().__init__(parent)
        self.attention = QCheckBox("Attention map")
        self.attention.setChecked(True)
        self.attention_kind = QComboBox()
        self.attention_kind.addItem("material (Grad-CAM)", "material")
        self.attention_kind.addItem("defects (CAM)", "defects")
        self.map_note = StatusLabel(narrowest=10, widest=12)  # stays whole
        self.map_note.setObjectName("mapNote")
        self.map_note.setStyleSheet("color: #8a5a00;")
        self.map_note.hide()
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setMinimumWidth(44)  # gives room to the map note at 1366 px
        self.opacity.setMaximumWidth(140)
        self.boxes = QCheckBox("Boxes")
        self.boxes.setChecked(True)
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setSingleStep(0.05)
        self.min_score.setDecimals(2)
        self.min_score.setPrefix("score ≥ ")
        for widget, signal in (
            (self.attention, self.attention.toggled),
            (self.attention_kind, self.attention_kind.currentIndexChanged),
            (self.opacity, self.opacity.valueChanged),
            (self.boxes, self.boxes.toggled),
            (self.min_score, self.min_score.valueChanged),
        ):
            signal.connect(self.changed)
        # two rows where the column is narrow (batch review's detail pane)
        widgets = (self.attention, self.attention_kind, self.map_note, QLabel("opacity"), self.opacity, self.boxes,
                   self.min_score)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        per_row = -(-len(widgets) // rows)
        for start in range(0, len(widgets), per_row):
            layout = QHBoxLayout()
            for widget in widgets[start:start + per_row]:
                layout.addWidget(widget)
            layout.addStretch(1)
            column.addLayout(layout)

    def show_map_note(self, result: object | None) -> None:
        """Say when the chosen map of ``result`` will not be seen (none, or faint); drawn from the
        result the view shows, each time it is drawn."""
        from station.labels import map_note

        maps = getattr(result, "attention", None)
        shown = result is not None and self.attention.isChecked() and self.attention.isEnabled()
        chosen = getattr(maps, self.attention_kind.currentData(), None) if maps is not None else None
        text, tip = map_note(chosen) if shown else ("", "")
        self.map_note.setText(text)
        self.map_note.setToolTip(tip)
        self.map_note.setVisible(bool(text))

    def set_maps_available(self, material: bool, defects: bool) -> None:
        """Offer only the maps the recipe's models make; pick one that exists."""
        model = self.attention_kind.model()
        for row, available in enumerate((material, defects)):
            model.item(row).setEnabled(available)
        if not (material, defects)[self.attention_kind.currentIndex()] and (material or defects):
            self.attention_kind.setCurrentIndex(0 if material else 1)

    def options(self) -> dict:
        return {
            "show_attention": self.attention.isChecked(),
            "attention": self.attention_kind.currentData(),
            "opacity": self.opacity.value() / 100.0,
            "show_boxes": self.boxes.isChecked(),
            "min_score": self.min_score.value(),
        }


def defect_size_text(box, um_per_px: float | None) -> tuple[str, str]:
    width, height = box[2] - box[0], box[3] - box[1]
    px = f"{width:.0f} × {height:.0f}"
    if not um_per_px:
        return px, "—"
    return px, f"{width * um_per_px:.0f} × {height * um_per_px:.0f}"


def defect_text(defect) -> str:
    """"Chipped edge (or Bent lead 0.41)": the operator's words; the raw names go in the tooltip."""
    name = display_name(defect.label)
    if not defect.alternatives:
        return name
    return f"{name} (or {', '.join(f'{display_name(label)} {score:.2f}' for label, score in defect.alternatives)})"


class ResultPanel(QWidget):
    """Shows one inspection's view; emits ``defect_selected(row)`` (-1 for none)."""

    defect_selected = Signal(int)
    VISIBLE_DEFECT_ROWS = 5

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.banner = QLabel("")
        self.banner.setObjectName("verdictBanner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        self.banner.hide()
        self._banner_view: InspectionView | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.banner)
        layout.addWidget(self._build_material_box())
        layout.addWidget(self._build_defect_box(), 1)

    def _build_material_box(self) -> QGroupBox:
        self.material_label = QLabel("—")
        self.material_label.setObjectName("materialLabel")
        self.material_label.setStyleSheet("font-size:20px;font-weight:bold;")
        self.confidence_label = ElidedLabel("")
        self.decap_label = ElidedLabel("—")
        self.decap_label.setObjectName("decapLabel")
        self.decap_label.setStyleSheet("font-size:15px;")
        self.chart = ConfidenceChart()
        self.chart.hide()
        self.material_box = QGroupBox("Packaging material")
        grid = compact(QGridLayout(self.material_box))
        grid.setVerticalSpacing(1)
        grid.addWidget(self.material_label, 0, 0, 1, 2)
        grid.addWidget(QLabel("Decapsulation"), 1, 0)
        grid.addWidget(self.decap_label, 1, 1)
        grid.addWidget(self.confidence_label, 2, 0, 1, 2)
        grid.addWidget(self.chart, 0, 2, 3, 1)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(2, 2)
        return self.material_box

    def _build_defect_box(self) -> QGroupBox:
        self.defects = QTableWidget(0, 4)
        self.defects.setObjectName("defectTable")
        self.defects.setHorizontalHeaderLabels(["Defect", "Score", "Size px", "Size µm"])
        header = self.defects.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.defects.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.defects.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.defects.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.defects.setWordWrap(False)
        self.defects.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.defects.verticalHeader().hide()
        self.defects.verticalHeader().setDefaultSectionSize(22)
        self.defects.setMinimumHeight(self.defects.horizontalHeader().sizeHint().height()
                                      + 22 * self.VISIBLE_DEFECT_ROWS + 2 * self.defects.frameWidth())
        self.defects.itemSelectionChanged.connect(self._on_selection)
        self.timing_label = ElidedLabel("")
        self.timing_label.setObjectName("timingLabel")
        self.timing_label.setStyleSheet("color:#777;")
        box = QGroupBox("Defects")
        column = compact(QVBoxLayout(box))
        column.addWidget(self.defects, 1)
        column.addWidget(self.timing_label)
        return box

    def set_classifier_shown(self, shown: bool) -> None:
        """An inspection-only recipe (bare boards, steel) has no packaging material to show."""
        self.material_box.setVisible(shown)

    def clear(self, message: str = "—") -> None:
        self.show_view(None, None, None)
        self.material_label.setText(message)

    def show_result(self, result, uncertain_below: float | None = None, um_per_px: float | None = None) -> None:
        """A result nobody has decided yet (batch review's detail pane)."""
        total = result.timings_ms.get("total")
        timing = f"models {total:.0f} ms on {result.device}" if total is not None and total == total else ""
        self.show_view(result_view(result), result, um_per_px, timing)

    def show_view(self, view: InspectionView | None, result, um_per_px: float | None, timing: str = "") -> None:
        """Banner, material and defects from one inspection's view (None: nothing captured yet)."""
        self._show_banner(view)
        self.material_label.setText(view.material if view is not None else "—")
        self.material_label.setToolTip(view.material_tooltip if view is not None else "")
        self.confidence_label.setText(view.confidence if view is not None else "")
        self.decap_label.setText(view.decap if view is not None else "—")
        shown = view is not None and view.show_result and result is not None
        call = result.material if shown else None
        if call is not None:
            self.chart.show_probabilities(tuple(display_name(c) for c in call.classes), call.probabilities,
                                          result.thresholds.get("uncertain_below", 0.0))
        else:
            self.chart.clear_bars()
        self._show_defects(result.defects if shown else [], um_per_px)
        self.timing_label.setText(timing if shown else "")

    def _show_banner(self, view: InspectionView | None) -> None:
        """The decision in one or two lines; its details elided to the column's width (a long
        reason would push the verdict buttons off a small screen), all of them in the tooltip."""
        self._banner_view = view
        if view is None or not view.banner:
            self.banner.hide()
            return
        details = [d for d in view.banner_details if d]
        font = QFont(self.banner.font())
        font.setPixelSize(_BANNER_DETAIL_PX)
        width = max(self.banner.contentsRect().width() - 12, 120)
        lines = [QFontMetrics(font).elidedText(d, Qt.TextElideMode.ElideRight, width) for d in details]
        if len(lines) > BANNER_DETAIL_LINES:
            lines = lines[:BANNER_DETAIL_LINES - 1] + [f"… and {len(lines) - BANNER_DETAIL_LINES + 1} more (hover)"]
        shown = "".join(f"<br><span style='font-size:{_BANNER_DETAIL_PX}px;font-weight:normal'>{html.escape(line)}</span>"
                        for line in lines)
        self.banner.setText(f"{html.escape(view.banner)}{shown}")
        self.banner.setToolTip("\n".join([view.banner, *details]))
        self.banner.setStyleSheet(f"background:{BANNER_COLOURS[view.tone]};{_BANNER_BASE}")
        self.banner.setProperty("tone", view.tone.value)
        self.banner.show()

    def resizeEvent(self, event) -> None:  # noqa: N802 — the details are elided to the new width
        super().resizeEvent(event)
        if self._banner_view is not None:
            self._show_banner(self._banner_view)

    def _show_defects(self, defects, um_per_px: float | None) -> None:
        self.defects.horizontalHeaderItem(3).setToolTip(
            f"At {um_per_px:.4g} µm per pixel: the scale of the objective on this capture's record" if um_per_px
            else "No image scale on record: choose a calibrated objective (Station ▸ Objectives) before capturing")
        self.defects.blockSignals(True)
        self.defects.setRowCount(len(defects))
        for row, defect in enumerate(defects):
            px, um = defect_size_text(defect.box, um_per_px)
            for column, text in enumerate((defect_text(defect), f"{defect.score:.2f}", px, um)):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                else:
                    item.setToolTip(f"{text}\nmodel's names: {defect.label_text}")
                self.defects.setItem(row, column, item)
        self.defects.blockSignals(False)

    def selected_defect(self) -> int:
        rows = self.defects.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def _on_selection(self) -> None:
        self.defect_selected.emit(self.selected_defect())
