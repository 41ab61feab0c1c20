"""What the models said about the captured frame: material call, confidence chart,
decapsulation method, the UNCERTAIN banner, the defect list, and overlay controls."""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
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

_BANNER_STYLE = "background:#b3261e;color:white;font-size:18px;font-weight:bold;padding:8px;border-radius:4px;"
_CONFIDENT_STYLE = "background:#1e6b34;color:white;font-size:15px;font-weight:bold;padding:6px;border-radius:4px;"


class ConfidenceChart(pg.PlotWidget):
    """Calibrated probability per material as horizontal-ish bars (pyqtgraph)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, background=None)
        self.setMinimumHeight(130)
        self.setMaximumHeight(160)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setYRange(0, 1, padding=0.02)
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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attention = QCheckBox("Attention map")
        self.attention.setChecked(True)
        self.attention_kind = QComboBox()
        self.attention_kind.addItem("material (Grad-CAM)", "material")
        self.attention_kind.addItem("defects (CAM)", "defects")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setMinimumWidth(90)
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
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.attention, self.attention_kind, QLabel("opacity"), self.opacity, self.boxes, self.min_score):
            layout.addWidget(widget)
        layout.addStretch(1)

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


class ResultPanel(QWidget):
    """Shows one InspectionResult; emits ``defect_selected(row)`` (-1 for none)."""

    defect_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.material_label = QLabel("—")
        self.material_label.setObjectName("materialLabel")
        self.material_label.setStyleSheet("font-size:22px;font-weight:bold;")
        self.confidence_label = QLabel("")
        self.decap_label = QLabel("—")
        self.decap_label.setObjectName("decapLabel")
        self.decap_label.setStyleSheet("font-size:15px;")
        self.banner = QLabel("")
        self.banner.setObjectName("uncertainBanner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.chart = ConfidenceChart()
        self.chart.hide()
        self.timing_label = QLabel("")
        self.timing_label.setStyleSheet("color:#777;")

        self.defects = QTableWidget(0, 4)
        self.defects.setObjectName("defectTable")
        self.defects.setHorizontalHeaderLabels(["Defect", "Score", "Size px", "Size µm"])
        self.defects.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.defects.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.defects.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.defects.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.defects.verticalHeader().hide()
        self.defects.setMinimumHeight(110)
        self.defects.itemSelectionChanged.connect(self._on_selection)

        material_box = self.material_box = QGroupBox("Packaging material")
        form = QFormLayout(material_box)
        form.addRow(self.material_label)
        form.addRow("Confidence", self.confidence_label)
        form.addRow(self.chart)
        form.addRow("Decapsulation", self.decap_label)
        defect_box = QGroupBox("Defects")
        QVBoxLayout(defect_box).addWidget(self.defects)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(material_box)
        layout.addWidget(defect_box, 1)
        layout.addWidget(self.timing_label)

    def set_classifier_shown(self, shown: bool) -> None:
        """An inspection-only recipe (bare boards, steel) has no packaging material to show."""
        self.material_box.setVisible(shown)

    def clear(self, message: str = "—") -> None:
        self.material_label.setText(message)
        self.confidence_label.setText("")
        self.decap_label.setText("—")
        self.banner.hide()
        self.chart.clear_bars()
        self.defects.setRowCount(0)
        self.timing_label.setText("")

    def show_result(self, result, uncertain_below: float, um_per_px: float | None = None) -> None:
        call = result.material
        problems = result.image_problems
        self.banner.hide()
        self.set_classifier_shown(call is not None)
        if call is None:
            self.material_label.setText("not classified")
            self.confidence_label.setText("this recipe has no classifier")
            self.decap_label.setText("—")
            self.chart.clear_bars()
        else:
            self.material_label.setText(call.material.capitalize())
            self.confidence_label.setText(f"{call.confidence:.1%} (calibrated; expert below {uncertain_below:.0%})")
            self.decap_label.setText(call.decap_method)
            self.chart.show_probabilities(call.classes, call.probabilities, uncertain_below)
            if not call.uncertain:
                self._show_banner(f"{call.material.capitalize()} — {call.decap_method}", _CONFIDENT_STYLE)
            elif not problems:
                self._show_banner("UNCERTAIN – route to expert", _BANNER_STYLE)
        if problems:
            # the networks answered, but on a frame the recipe does not trust
            details = "".join(f"<br><span style='font-size:12px;font-weight:normal'>{html.escape(p)}</span>"
                              for p in problems)
            self._show_banner(f"IMAGE CHECK FAILED – route to expert{details}", _BANNER_STYLE)
        self.defects.blockSignals(True)
        self.defects.setRowCount(len(result.defects))
        for row, defect in enumerate(result.defects):
            px, um = defect_size_text(defect.box, um_per_px)
            for column, text in enumerate((defect.label_text, f"{defect.score:.2f}", px, um)):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.defects.setItem(row, column, item)
        self.defects.blockSignals(False)
        total = result.timings_ms.get("total")
        if total is not None and not math.isnan(total):
            self.timing_label.setText(f"{total:.0f} ms on {result.device}")

    def _show_banner(self, text: str, style: str) -> None:
        self.banner.setText(text)
        self.banner.setStyleSheet(style)
        self.banner.show()

    def selected_defect(self) -> int:
        rows = self.defects.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def _on_selection(self) -> None:
        self.defect_selected.emit(self.selected_defect())
