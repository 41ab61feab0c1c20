"""The operator's column: who is signed in, which chip, Capture & Classify, the verdict
and Release to decapping."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from station.ui.result_panel import ResultPanel


class ChipFields(QWidget):
    """Chip / lot / serial. A barcode scanner (keyboard wedge) types and presses Enter,
    which moves on to the next field; Enter in the last one emits ``completed``."""

    completed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chip = QLineEdit()
        self.chip.setObjectName("chipId")
        self.lot = QLineEdit()
        self.lot.setObjectName("lotId")
        self.serial = QLineEdit()
        self.serial.setObjectName("serialNo")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for label, field, placeholder in (
            ("Chip", self.chip, "scan or type part number"),
            ("Lot", self.lot, "lot / date code"),
            ("Serial", self.serial, "serial number"),
        ):
            field.setPlaceholderText(placeholder)
            form.addRow(label, field)
        self.chip.returnPressed.connect(self.lot.setFocus)
        self.lot.returnPressed.connect(self.serial.setFocus)
        self.serial.returnPressed.connect(self.completed)

    def values(self) -> dict[str, str]:
        return {"chip_id": self.chip.text().strip(), "lot_id": self.lot.text().strip(), "serial": self.serial.text().strip()}

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
    reference_from_frame = Signal()
    reference_from_file = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(400)
        self.setMaximumWidth(520)
        self.operator_label = QLabel("Not signed in")
        self.operator_label.setObjectName("operatorLabel")
        self.operator_label.setStyleSheet("font-weight:bold;")
        self.sign_in_button = QPushButton("Sign in…")
        self.sign_in_button.setObjectName("signInButton")
        self.sign_in_button.clicked.connect(self.sign_in_clicked)
        self.recipe = QComboBox()
        self.recipe.setObjectName("recipePicker")
        self.recipe.activated.connect(lambda _: self.recipe_chosen.emit(self.recipe.currentText()))
        self.recipe_status = QLabel("")
        self.recipe_status.setWordWrap(True)
        self.recipe_status.setStyleSheet("color:#777;")
        self.chip_fields = ChipFields()

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

        self.capture_button = QPushButton("Capture && Classify")
        self.capture_button.setObjectName("captureButton")
        self.capture_button.setMinimumHeight(54)
        self.capture_button.setStyleSheet("font-size:18px;font-weight:bold;")
        self.capture_button.setToolTip("Space, or the foot pedal")
        self.capture_button.clicked.connect(self.capture_clicked)
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("busyLabel")
        self.busy_label.setStyleSheet("color:#a15c00;")

        self.results = ResultPanel()

        self.accept_button = QPushButton("Accept")
        self.accept_button.setObjectName("acceptButton")
        self.override_button = QPushButton("Override…")
        self.override_button.setObjectName("overrideButton")
        self.hold_button = QPushButton("Reject / hold")
        self.hold_button.setObjectName("holdButton")
        self.accept_button.clicked.connect(self.accept_clicked)
        self.override_button.clicked.connect(self.override_clicked)
        self.hold_button.clicked.connect(self.hold_clicked)
        self.release_button = QPushButton("Release to decapping")
        self.release_button.setObjectName("releaseButton")
        self.release_button.setMinimumHeight(40)
        self.release_button.clicked.connect(self.release_clicked)
        self.record_label = QLabel("")
        self.record_label.setObjectName("recordLabel")
        self.record_label.setWordWrap(True)
        self.record_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        operator_row = QHBoxLayout()
        operator_row.addWidget(self.operator_label, 1)
        operator_row.addWidget(self.sign_in_button)
        setup = QGroupBox("Station")
        setup_layout = QVBoxLayout(setup)
        setup_layout.addLayout(operator_row)
        recipe_row = QHBoxLayout()
        recipe_row.addWidget(QLabel("Recipe"))
        recipe_row.addWidget(self.recipe, 1)
        setup_layout.addLayout(recipe_row)
        setup_layout.addWidget(self.recipe_status)
        chip_box = QGroupBox("Part")
        QVBoxLayout(chip_box).addWidget(self.chip_fields)
        verdict_box = QGroupBox("Verdict")
        verdict_layout = QVBoxLayout(verdict_box)
        verdict_row = QHBoxLayout()
        for button in (self.accept_button, self.override_button, self.hold_button):
            verdict_row.addWidget(button)
        verdict_layout.addLayout(verdict_row)
        verdict_layout.addWidget(self.release_button)
        verdict_layout.addWidget(self.record_label)

        # on a short screen the upper part scrolls; the verdict and release stay in view
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 4, 0)
        content_layout.addWidget(setup)
        content_layout.addWidget(chip_box)
        content_layout.addWidget(self.reference_box)
        content_layout.addWidget(self.capture_button)
        content_layout.addWidget(self.busy_label)
        content_layout.addWidget(self.results, 1)
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll, 1)
        layout.addWidget(verdict_box)
        self.set_verdict_enabled(False)
        self.release_button.setEnabled(False)

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

    def set_verdict_enabled(self, enabled: bool) -> None:
        for button in (self.accept_button, self.override_button, self.hold_button):
            button.setEnabled(enabled)
