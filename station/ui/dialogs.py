"""Small modal dialogs: operator sign-in and material override."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)


class SignInDialog(QDialog):
    """Operator ID (a badge scanner can type it) and name; both required."""

    def __init__(self, operator_id: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Operator sign-in")
        self.setObjectName("signInDialog")
        self.operator_id = QLineEdit(operator_id)
        self.operator_id.setObjectName("operatorId")
        self.operator_id.setPlaceholderText("scan badge or type ID")
        self.operator_name = QLineEdit()
        self.operator_name.setObjectName("operatorName")
        self.operator_name.setPlaceholderText("full name")
        self.operator_id.returnPressed.connect(self.operator_name.setFocus)
        form = QFormLayout()
        form.addRow("Operator ID", self.operator_id)
        form.addRow("Name", self.operator_name)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign in")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        for field in (self.operator_id, self.operator_name):
            field.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Every action at this station is recorded under your operator ID."))
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._update_ok()

    def _update_ok(self) -> None:
        ok = bool(self.operator_id.text().strip() and self.operator_name.text().strip())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def values(self) -> tuple[str, str]:
        return self.operator_id.text().strip(), self.operator_name.text().strip()


class OverrideDialog(QDialog):
    """Choose the material the operator sees; a written reason is mandatory. Without
    ``materials`` (a recipe that only inspects) it overrides the defect findings: a reason only."""

    def __init__(self, materials: list[str], predicted: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Override material" if materials else "Override the findings")
        self.setObjectName("overrideDialog")
        self.material = QComboBox()
        self.material.setObjectName("overrideMaterial")
        others = [m for m in materials if m != predicted] + [m for m in materials if m == predicted]
        self.material.addItems(others)
        self.reason = QPlainTextEdit()
        self.reason.setObjectName("overrideReason")
        self.reason.setPlaceholderText("Why is the model wrong? (required — e.g. gold lid visible under the label)")
        self.reason.setMaximumHeight(110)
        form = QFormLayout()
        if materials:
            form.addRow("Model said", QLabel(predicted or "—"))
            form.addRow("Material", self.material)
        else:
            form.addRow(QLabel("This recipe names no material: the override records that the defect\n"
                               "findings are wrong, with your reason, beside them in the audit log."))
            self.reason.setPlaceholderText("Why are the findings wrong? (required — e.g. the 'short' is dust on the lens)")
        form.addRow("Reason", self.reason)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Override")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._update_ok()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.reason.toPlainText().strip()))

    def values(self) -> tuple[str, str]:
        return self.material.currentText(), self.reason.toPlainText().strip()
