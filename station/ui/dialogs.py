"""Small dialogs: material override, a reason for the record, and the cards of the models in use.
(Sign-in is in station/ui/operator_session.py.)"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from station.labels import display_name
from station.ui.screen_fit import fit_to_screen

ROLE_TITLES = {"classifier": "Material classifier", "detector": "Defect detector"}
# CommonMark with tables (md4c's MD_FLAG_TABLES) and no raw HTML: Qt's GitHub dialect also turns
# "mAP@0.5" into a mail link, and a card's limitations are free text
_CARD_MARKDOWN = QTextDocument.MarkdownFeature(
    QTextDocument.MarkdownFeature.MarkdownDialectCommonMark.value
    | QTextDocument.MarkdownFeature.MarkdownNoHTML.value | 0x0100
)


class ReasonDialog(QDialog):
    """A written reason for the record (a hold, a part without an ID): OK stays disabled until
    there is one."""

    def __init__(self, title: str, prompt: str, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("reasonDialog")
        self.text = QPlainTextEdit()
        self.text.setObjectName("reasonText")
        self.text.setPlaceholderText(f"{placeholder} (required)")
        self.text.setMaximumHeight(110)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(title.split(" —")[0])
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.text.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        prompt_label = QLabel(prompt)
        prompt_label.setWordWrap(True)
        layout.addWidget(prompt_label)
        layout.addWidget(self.text)
        layout.addWidget(self.buttons)
        self._update_ok()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.reason()))

    def reason(self) -> str:
        return self.text.toPlainText().strip()


class OverrideDialog(QDialog):
    """Choose the material the operator sees; a written reason is mandatory. Without
    ``materials`` (a recipe that only inspects) it overrides the defect findings: a reason only."""

    def __init__(self, materials: list[str], predicted: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Override material" if materials else "Override the findings")
        self.setObjectName("overrideDialog")
        self.material = QComboBox()
        self.material.setObjectName("overrideMaterial")
        for material in [m for m in materials if m != predicted] + [m for m in materials if m == predicted]:
            self.material.addItem(display_name(material), material)  # the record keeps the raw name
        self.reason = QPlainTextEdit()
        self.reason.setObjectName("overrideReason")
        self.reason.setPlaceholderText("Why is the model wrong? (required — e.g. gold lid visible under the label)")
        self.reason.setMaximumHeight(110)
        form = QFormLayout()
        if materials:
            form.addRow("Model said", QLabel(display_name(predicted)))
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
        return self.material.currentData() or "", self.reason.toPlainText().strip()


class ModelCardsDialog(QDialog):
    """What the loaded recipe's models are: one tab per model with its card (validation metrics,
    known limitations, data, training run), as written in the model folder's MODEL_CARD.md."""

    def __init__(self, recipe_name: str, cards: dict, parent: QWidget | None = None) -> None:
        from station.ml.cards import render_markdown  # already imported by the inference worker

        super().__init__(parent)
        self.setWindowTitle(f"Models of “{recipe_name}”")
        self.setObjectName("modelCardsDialog")
        fit_to_screen(self, QSize(760, 640))
        self.tabs = QTabWidget()
        for role, card in cards.items():
            page = QTextBrowser()
            page.setObjectName(f"card_{role}")
            page.setOpenExternalLinks(False)
            page.document().setMarkdown(render_markdown(card), _CARD_MARKDOWN)
            page.moveCursor(QTextCursor.MoveOperation.Start)  # open at the metrics, not at the end
            self.tabs.addTab(page, f"{ROLE_TITLES.get(role, role)}: {card.name}")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)

    @classmethod
    def show_fresh(cls, previous: ModelCardsDialog | None, recipe_name: str, cards: dict,
                   parent: QWidget) -> ModelCardsDialog:
        """A new dialog in place of ``previous`` (the recipe may have changed since), shown."""
        if previous is not None:
            previous.close()
            previous.deleteLater()
        dialog = cls(recipe_name, cards, parent)
        dialog.show()
        return dialog
