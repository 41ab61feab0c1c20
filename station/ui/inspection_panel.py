"""The operator's column: who is signed in, which chip, Capture & Classify, the verdict
and Release to decapping. :meth:`InspectionPanel.show_state` draws it from one
:class:`PanelState`; nothing else sets its labels or buttons."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.ui.compact import ElidedLabel, compact
from station.ui.result_panel import ResultPanel
from station.workflow import InspectionView


@dataclass(frozen=True)
class PanelState:
    """What the window knows beyond the inspection: who, whether a capture may start, what is
    being written. ``view`` is :meth:`station.workflow.Inspection.view` (None before a capture)."""

    operator_text: str = "Not signed in"
    signed_in: bool = False
    capture_enabled: bool = False
    capture_tooltip: str = ""
    busy_text: str = ""
    view: InspectionView | None = None
    result: object = None  # the InspectionResult behind ``view`` (defects, chart)
    writing: bool = False  # an audit record of this inspection is being written
    record_note: str = ""  # replaces the view's record line ("Writing…", "NOT recorded")
    chip_locked: bool = False  # a verdict is recorded: the IDs are the record's until release
    timing_text: str = ""
    um_per_px: float | None = None


class ChipFields(QWidget):
    """Chip / lot / serial. A barcode scanner (keyboard wedge) types and presses Enter,
    which moves on to the next field; Enter in the last one emits ``completed``."""

    completed = Signal()
    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chip = QLineEdit()
        self.chip.setObjectName("chipId")
        self.lot = QLineEdit()
        self.lot.setObjectName("lotId")
        self.serial = QLineEdit()
        self.serial.setObjectName("serialNo")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(3)
        for column, (label, field, placeholder) in enumerate((
            ("Chip", self.chip, "scan or type the chip ID (required)"),
            ("Lot", self.lot, "lot / date code"),
            ("Serial", self.serial, "serial number"),
        )):
            field.setPlaceholderText(placeholder)
            field.textEdited.connect(self.edited)
            row, col = (0, 0) if column == 0 else (1, 2 * (column - 1))
            grid.addWidget(QLabel(label), row, col)
            grid.addWidget(field, row, col + 1, 1, 3 if column == 0 else 1)
        self.chip.returnPressed.connect(self.lot.setFocus)
        self.lot.returnPressed.connect(self.serial.setFocus)
        self.serial.returnPressed.connect(self.completed)

    def values(self) -> dict[str, str]:
        return {"chip_id": self.chip.text().strip(), "lot_id": self.lot.text().strip(), "serial": self.serial.text().strip()}

    def set_locked(self, locked: bool) -> None:
        for field in (self.chip, self.lot, self.serial):
            field.setReadOnly(locked)
            field.setToolTip("The verdict is recorded for these IDs: release or set the chip aside first." if locked else "")

    def clear(self) -> None:
        for field in (self.chip, self.lot, self.serial):
            field.clear()
        self.chip.setFocus()


class InspectionPanel(QWidget):
    capture_clicked = Signal()
    accept_clicked = Signal()
    override_clicked = Signal()
    hold_clicked = Signal()
    release_clicked = Signal()
    sign_in_clicked = Signal()
    recipe_chosen = Signal(str)
    objective_chosen = Signal(str)
    reference_from_frame = Signal()
    reference_from_file = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # everything from the operator's name to Release fits 1366×768 (tests/test_ui_screen_fit.py)
        self.setMinimumWidth(380)
        self.setMaximumWidth(520)
        self.chip_fields = ChipFields()
        self.results = ResultPanel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self._build_station_box())
        chip_box = QGroupBox("Part")
        compact(QVBoxLayout(chip_box)).addWidget(self.chip_fields)
        layout.addWidget(chip_box)
        layout.addWidget(self._build_reference_box())
        layout.addLayout(self._build_capture_row())
        layout.addWidget(self.results, 1)
        layout.addWidget(self._build_verdict_box())
        self.show_state(PanelState())

    def sizeHint(self) -> QSize:  # noqa: N802 — room for "Release to chemical (acid) decapsulation"
        return QSize(440, super().sizeHint().height())

    def _build_station_box(self) -> QGroupBox:
        self.operator_label = ElidedLabel("Not signed in")
        self.operator_label.setObjectName("operatorLabel")
        self.operator_label.setStyleSheet("font-weight:bold;")
        self.sign_in_button = QPushButton("Sign in…")
        self.sign_in_button.setObjectName("signInButton")
        self.sign_in_button.clicked.connect(self.sign_in_clicked)
        self.recipe = QComboBox()
        self.recipe.setObjectName("recipePicker")
        self.recipe.activated.connect(lambda _: self.recipe_chosen.emit(self.recipe.currentText()))
        self.recipe_status = ElidedLabel("")
        self.recipe_status.setObjectName("recipeStatus")
        self.recipe_status.setStyleSheet("color:#a15c00;")
        self.recipe_status.hide()
        box = QGroupBox("Station")
        grid = compact(QGridLayout(box))
        grid.addWidget(self.operator_label, 0, 0, 1, 2)
        grid.addWidget(self.sign_in_button, 0, 2)
        grid.addWidget(QLabel("Recipe"), 1, 0)
        grid.addWidget(self.recipe, 1, 1, 1, 2)
        grid.addWidget(self.recipe_status, 2, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        return box

    def set_objectives(self, objectives, current: str) -> None:
        """``station.capture.scale.Objective`` rows, ``current`` selected; none: says how to add one."""
        self.objective.clear()
        for objective in objectives:
            self.objective.addItem(objective.text(), objective.name)
        if not objectives:
            self.objective.addItem("none: sizes in px", None)
            self.objective.setItemData(0, "No objective set: Station ▸ Objectives and image scale… adds one",
                                       Qt.ItemDataRole.ToolTipRole)
        index = self.objective.findData(current)
        if objectives and index < 0:
            # the settings name none of the listed objectives: the next capture is recorded without
            # one, so the picker must not show the first as if it were in use
            self.objective.insertItem(0, "choose the objective", None)
            self.objective.setItemData(0, "Not recorded: choose the objective on the microscope now",
                                       Qt.ItemDataRole.ToolTipRole)
            index = 0
        self.objective.setCurrentIndex(max(index, 0))
        self.objective.setEnabled(bool(objectives))

    def set_recipe_status(self, text: str) -> None:
        """Loading, or why the recipe could not be loaded: one line under the recipe (all of it
        in the tooltip)."""
        self.recipe_status.setText(text)
        self.recipe_status.setVisible(bool(text))

    def set_recipe_description(self, text: str) -> None:
        """The loaded recipe's description goes in the picker's tooltip, not in the column."""
        self.recipe.setToolTip(text)
        self.set_recipe_status("")

    def _build_reference_box(self) -> QGroupBox:
        self.reference_box = QGroupBox("Reference (defect-free template)")
        self.reference_label = QLabel("no reference set")
        self.reference_label.setWordWrap(True)
        reference_frame_button = QPushButton("Use live frame")
        reference_frame_button.setObjectName("referenceFromFrame")
        reference_frame_button.clicked.connect(self.reference_from_frame)
        reference_file_button = QPushButton("Load file…")
        reference_file_button.clicked.connect(self._choose_reference_file)
        reference_layout = QVBoxLayout(self.reference_box)
        reference_row = QHBoxLayout()
        reference_row.addWidget(reference_frame_button)
        reference_row.addWidget(reference_file_button)
        reference_layout.addLayout(reference_row)
        reference_layout.addWidget(self.reference_label)
        self.reference_box.hide()
        return self.reference_box

    def _build_capture_row(self) -> QVBoxLayout:
        self.capture_button = QPushButton("Capture && Classify")
        self.capture_button.setObjectName("captureButton")
        self.capture_button.setMinimumHeight(40)
        self.capture_button.setStyleSheet("font-size:17px;font-weight:bold;")
        self.capture_button.clicked.connect(self.capture_clicked)
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("busyLabel")
        self.busy_label.setWordWrap(True)
        self.busy_label.setStyleSheet("color:#a15c00;")
        row = QHBoxLayout()
        row.addWidget(self.capture_button, 3)
        row.addLayout(self._build_objective_picker(), 2)
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(self.busy_label)
        return column

    def _build_objective_picker(self) -> QVBoxLayout:
        """Beside Capture: the objective the next capture is recorded with (its scale gives µm)."""
        self.objective = QComboBox()
        self.objective.setObjectName("objectivePicker")
        self.objective.setMinimumContentsLength(12)
        self.objective.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.objective.setToolTip("The objective on the microscope now: recorded with each capture, it gives the "
                                  "defects' sizes in µm (Station ▸ Objectives to add or calibrate one)")
        self.objective.activated.connect(lambda _: self.objective_chosen.emit(self.objective.currentData() or ""))
        title = QLabel("Objective")
        title.setStyleSheet("color:#555;font-size:11px;")
        column = QVBoxLayout()
        column.setSpacing(0)
        column.addWidget(title)
        column.addWidget(self.objective)
        return column

    def _build_verdict_box(self) -> QGroupBox:
        self.accept_button = QPushButton("Accept")
        self.accept_button.setObjectName("acceptButton")
        self.override_button = QPushButton("Override…")
        self.override_button.setObjectName("overrideButton")
        self.hold_button = QPushButton("Hold…")
        self.hold_button.setObjectName("holdButton")
        self.hold_button.setToolTip("Hold: the chip does not go to decapping (a reason is required; recorded as REJECT_HOLD)")
        self.accept_button.clicked.connect(self.accept_clicked)
        self.override_button.clicked.connect(self.override_clicked)
        self.hold_button.clicked.connect(self.hold_clicked)
        self.release_button = QPushButton("Release to decapping")
        self.release_button.setObjectName("releaseButton")
        self.release_button.setMinimumHeight(32)
        self.release_button.setStyleSheet("font-weight:bold;")
        self.release_button.clicked.connect(self.release_clicked)
        self.record_label = QLabel("")
        self.record_label.setObjectName("recordLabel")
        self.record_label.setWordWrap(True)
        self.record_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        verdict_box = QGroupBox("Verdict")
        verdict_layout = compact(QVBoxLayout(verdict_box))
        verdict_row = QHBoxLayout()
        for button in (self.accept_button, self.override_button, self.hold_button):
            verdict_row.addWidget(button)
        verdict_layout.addLayout(verdict_row)
        verdict_layout.addWidget(self.release_button)
        verdict_layout.addWidget(self.record_label)
        return verdict_box

    def show_state(self, state: PanelState) -> None:
        """Redraw the whole column from ``state``: the one way its contents change."""
        self.operator_label.setText(state.operator_text)
        self.sign_in_button.setText("Switch operator…" if state.signed_in else "Sign in…")
        self.capture_button.setEnabled(state.capture_enabled)
        self.capture_button.setToolTip(state.capture_tooltip or "F12 / the foot pedal, Space (outside a text field), "
                                                                 "or Enter in the Serial field")
        self.busy_label.setText(state.busy_text)
        self.busy_label.setVisible(bool(state.busy_text))
        self.chip_fields.set_locked(state.chip_locked)
        view = state.view
        self.results.show_view(view, state.result, state.um_per_px, state.timing_text)
        decide = view is not None and state.signed_in and not state.writing
        self.accept_button.setEnabled(decide and view.can_accept)
        self.accept_button.setText(view.accept_text if view is not None else "Accept")
        self.accept_button.setToolTip(view.accept_tooltip if view is not None else "")
        self.override_button.setEnabled(decide and view.can_override)
        self.hold_button.setEnabled(decide and view.can_hold)
        self.release_button.setEnabled(decide and view.can_release)
        self.release_button.setText(view.release_text if view is not None else "Release to decapping")
        self.record_label.setText(state.record_note or (view.record if view is not None else ""))

    def set_recipes(self, names: list[str], current: str) -> None:
        self.recipe.clear()
        self.recipe.addItems(names)
        if current in names:
            self.recipe.setCurrentText(current)

    def set_reference_visible(self, visible: bool) -> None:
        self.reference_box.setVisible(visible)

    def set_reference_text(self, text: str) -> None:
        self.reference_label.setText(text)

    def _choose_reference_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Reference image", "", "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff);;All files (*)"
        )
        if path:
            self.reference_from_file.emit(path)
