"""One audit entry as a reader sees it: a form of its fields beside its archived image with the
recorded defect boxes. :func:`entry_sections` is the form as plain data (no Qt), so what the
dialog says can be checked without a window; "Copy as JSON" keeps the raw record at hand."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from station.audit.entry import AuditEntry
from station.labels import (
    action_title,
    display_name,
    familiarity_text,
    recorded_time_text,
    scale_text,
    setting_text,
    signature_text,
    time_text,
    value_text,
    verdict_title,
)
from station.ui.image_view import ImageView
from station.ui.screen_fit import fit_to_screen
from station.workflow import objective_of_record

Row = tuple[str, str, str]  # label, text, tooltip


def _short(digest: str | None, keep: int = 16) -> tuple[str, str]:
    if not digest:
        return "", ""
    return (digest[:keep] + "…" if len(digest) > keep else digest), digest


def _defect_rows(defects: list[dict], um_per_px: float | None) -> list[Row]:
    """Each recorded defect: class, score, box, and its size in µm where the record has the scale."""
    rows = []
    for i, defect in enumerate(defects):
        text = f"score {float(defect.get('score', 0.0)):.2f}"
        box = defect.get("box")
        if box:
            text += " · box " + ", ".join(f"{v:.0f}" for v in box)
            if um_per_px:
                text += f" · {(box[2] - box[0]) * um_per_px:.0f} × {(box[3] - box[1]) * um_per_px:.0f} µm"
        rows.append((f"{i + 1}. {display_name(defect.get('class'))}", text, str(defect.get("class", ""))))
    return rows


def _capture_rows(camera: Any, objective: Any) -> list[Row]:
    """The camera (identity, resolution, exposure, gain as read back) and the objective of a capture."""
    rows: list[Row] = []
    if isinstance(camera, dict):
        identity = " ".join(str(camera[k]) for k in ("model",) if camera.get(k)) or camera.get("spec", "")
        if camera.get("serial"):
            identity += f", serial {camera['serial']}"
        if identity:
            rows.append(("Camera", identity, f"spec {camera.get('spec', '?')}"))
        if camera.get("width") and camera.get("height"):
            rows.append(("Resolution", f"{camera['width']} × {camera['height']} px", ""))
        if camera.get("exposure") is not None:
            rows.append(("Exposure", f"{camera['exposure']:g} {camera.get('exposure_unit', '')}".strip(), ""))
        if camera.get("gain") is not None:
            rows.append(("Gain", f"{camera['gain']:g}", "in the camera's units (dB on most)"))
    if isinstance(objective, dict):
        rows.append(("Objective", f"{objective.get('name', '?')} · {scale_text(objective.get('um_per_px'))}",
                     "the image scale the defects' sizes were given in"))
    return rows


def _detail_rows(details: dict, zone) -> list[Row]:
    """The other details, each readable: the frame's time, the familiarity check as one line, a
    setting's value; the raw value in the tooltip."""
    details = dict(details)
    rows: list[Row] = []
    if "frame_time" in details:
        moment = details.pop("frame_time")
        rows.append(("Frame time", time_text(moment, zone), f"frame_time {moment}"))
    familiarity = details.pop("familiarity", None)
    reasons = details.pop("unfamiliar", None)
    if isinstance(familiarity, dict):
        rows.append(("Familiarity", familiarity_text(familiarity, reasons), "the models' feature distance to their "
                     "training parts, as a multiple of the limit (above 1.00: unfamiliar)"))
    elif reasons:
        rows.append(("Familiarity", familiarity_text({"familiar": False}, reasons), "unfamiliar"))
    timings = details.pop("timings_ms", None)
    if isinstance(timings, dict) and timings:
        steps = [f"{display_name(step).lower()} {f'{ms:.0f} ms' if isinstance(ms, (int, float)) else value_text(ms)}"
                 for step, ms in timings.items()]
        rows.append(("Timings", " · ".join(steps), "timings_ms"))
    setting = details.get("setting")
    for key, value in sorted(details.items()):
        text = setting_text(setting, value) if setting and key in ("value", "previous") else value_text(value)
        rows.append((display_name(key), text, key))
    return sorted(rows, key=lambda row: row[0])


def entry_sections(entry: AuditEntry) -> list[tuple[str, list[Row]]]:
    """The entry's fields in sections, each row ``(label, text, tooltip)``; empty fields left out."""
    local = entry.local_time
    zone = local.tzinfo  # every time in the form in the station's offset when it wrote the entry
    what = [
        ("Action", action_title(entry.action), f"recorded as {entry.action}"),
        ("When", recorded_time_text(local, entry.utc_offset), entry.time_utc),
        ("Operator", entry.operator_id, ""),
        ("Station", entry.station_id, f"app version {entry.app_version}"),
    ]
    if entry.refers_to is not None:
        what.append(("Refers to", f"entry #{entry.refers_to}", ""))
    part = [(label, value, "") for label, value in (("Chip", entry.chip_id), ("Lot", entry.lot_id),
                                                    ("Serial", entry.serial_id), ("Recipe", entry.recipe)) if value]
    decision: list[Row] = []
    if entry.verdict:
        decision.append(("Verdict", verdict_title(entry.verdict), entry.verdict))
    if entry.material:
        decision.append(("Material", display_name(entry.material), entry.material))
    if entry.predicted_material:
        decision.append(("Model said", display_name(entry.predicted_material), entry.predicted_material))
    if entry.probabilities:
        ranked = sorted(entry.probabilities.items(), key=lambda item: -item[1])
        decision.append(("Probabilities", " · ".join(f"{display_name(m)} {p:.1%}" for m, p in ranked), ""))
    if entry.uncertain is not None:
        decision.append(("Routed to expert", "yes" if entry.uncertain else "no", "the model's call was uncertain"
                         if entry.uncertain else ""))
    if entry.decap_method:
        decision.append(("Decapsulation", entry.decap_method, ""))
    if entry.reason:
        decision.append(("Reason", entry.reason, ""))
    details = dict(entry.details)
    objective = objective_of_record(details)
    defects = _defect_rows(entry.defects, objective.um_per_px if objective is not None else None)
    capture = _capture_rows(details.pop("camera", None), details.pop("objective", None))
    signed = details.pop("signature", None)
    if isinstance(signed, dict):
        decision.append(("Signed by", signature_text(signed, zone), "electronic signature, hashed into the record; "
                         f"signed at {signed.get('time_utc', '?')}"))
    other = _detail_rows(details, zone)
    models = [(name, *_short(sha)) for name, sha in sorted(entry.models.items())]
    models += [(f"threshold {display_name(name).lower()}", value_text(value), name)
               for name, value in sorted(entry.thresholds.items())]
    integrity = [(label, *_short(value)) for label, value in (
        ("Image SHA-256", entry.image_sha256), ("Entry hash", entry.hash), ("Previous hash", entry.prev_hash),
        ("Signature", entry.signature), ("Signing key", entry.signing_key)) if value]
    if entry.image_path:
        integrity.insert(0, ("Image file", entry.image_path, ""))
    sections = [("Entry", what), ("Part", part), ("Decision", decision), ("Defects", defects), ("Capture", capture),
                ("Details", other), ("Models", models), ("Integrity", integrity)]
    return [(title, rows) for title, rows in sections if rows]


class AuditEntryDialog(QDialog):
    """One entry: its archived image with the recorded defect boxes, and its fields as a form."""

    def __init__(self, entry: AuditEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setObjectName("auditEntryDialog")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # each opened entry is a new dialog
        self.setWindowTitle(f"Audit entry #{entry.id} — {action_title(entry.action)}")
        self.image_view = ImageView("no image recorded" if not entry.image_path else "loading image…", interactive=True)
        self.form = QWidget()
        column = QVBoxLayout(self.form)
        self.value_labels: dict[str, QLabel] = {}
        for title, rows in entry_sections(entry):
            box = QGroupBox(title)
            form = QFormLayout(box)
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            for label, text, tooltip in rows:
                value = QLabel(text)
                value.setWordWrap(True)
                # one long unbroken value (the archive path) must not widen the whole form past the
                # pane: every other line (probabilities, defects in µm) would be cut at its right edge
                value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
                value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                value.setToolTip(tooltip or text)
                form.addRow(label, value)
                self.value_labels[f"{title}/{label}"] = value
            column.addWidget(box)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        splitter = QSplitter()
        splitter.addWidget(self.image_view)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy as JSON", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy_json)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        fit_to_screen(self, QSize(1100, 700))
        splitter.setSizes([3 * self.width() // 5, 2 * self.width() // 5])  # not from the form's size hint: it wraps

    def copy_json(self) -> None:
        QGuiApplication.clipboard().setText(json.dumps(self.entry.to_dict(), indent=2, ensure_ascii=False))

    def show_image(self, image: np.ndarray | None) -> None:
        if image is None:
            self.image_view.set_placeholder(f"archived image missing or unreadable:\n{self.entry.image_path}")
            return
        from station.inference import Defect
        from station.render import draw_defects

        defects = [Defect(tuple(d["box"]), d.get("class", "?"), float(d.get("score", 0.0))) for d in self.entry.defects if "box" in d]
        self.image_view.set_image(draw_defects(image, defects) if defects else image)
