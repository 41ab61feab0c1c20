"""Capture & Classify, the verdict and Release, for :class:`station.ui.main_window.MainWindow`.

Each step changes the :class:`station.workflow.Inspection` (or asks the audit thread to write
its record) and then calls ``_refresh()``, which redraws the panel from that state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtWidgets import QDialog, QMessageBox

from station.audit.draft import EntryDraft
from station.audit.entry import AuditEntry, Verdict
from station.labels import action_title, display_name
from station.ui.dialogs import OverrideDialog, ReasonDialog
from station.users import Permission, PermissionDenied
from station.workflow import Inspection, Operator, chip_id_problem

log = logging.getLogger(__name__)

RELEASE_NOW = "Release now"
SET_ASIDE = "Set aside (not released)"
CANCEL = "Cancel"


class InspectionFlowMixin:
    inspection: Inspection | None

    def ask_choice(self, title: str, text: str, choices: list[str]) -> str | None:
        """A question with one button per choice (the last one cancels); tests replace it."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self)
        buttons = {box.addButton(choice, QMessageBox.ButtonRole.AcceptRole if i < len(choices) - 1
                                 else QMessageBox.ButtonRole.RejectRole): choice for i, choice in enumerate(choices)}
        box.exec()
        return buttons.get(box.clickedButton())

    def ask_reason(self, title: str, prompt: str, placeholder: str) -> str | None:
        """A reason for the record (required); None when the operator cancels. Tests replace it."""
        dialog = ReasonDialog(title, prompt, placeholder, self)
        return dialog.reason() if dialog.exec() == QDialog.DialogCode.Accepted else None

    # -- capture --------------------------------------------------------------------
    @property
    def is_classifying(self) -> bool:
        return self.inspection is not None and self.inspection.result is None and self.inspection.error is None

    def capture_and_classify(self) -> None:
        if self.inspection is not None and self.inspection.awaiting_release and not self._pending_audit_for_inspection():
            self._settle_unreleased()
            return
        refusal = self._capture_refusal()
        if refusal:
            self._flash_busy(refusal)
            return
        chip = self.panel.chip_fields.values()
        no_id_reason = ""
        if not chip["chip_id"]:
            no_id_reason = self.ask_reason("No chip ID", "This recipe allows a part without an ID. Why has it none?",
                                           "e.g. bare die, ID lasered off") or ""
            if not no_id_reason:
                return
        self._start_capture(chip, no_id_reason)

    def _start_capture(self, chip: dict[str, str], no_id_reason: str) -> None:
        from station.inference import InspectionRequest

        self._capture_started = time.perf_counter()
        frame, recipe = self.latest_frame, self._recipe
        self.inspection = Inspection(next(self._request_ids), frame, recipe, chip, owner=self.operator,
                                     no_id_reason=no_id_reason, objective=self.current_objective())
        self._record_note = ""
        self._latency_ms = None
        self.captured_view.reset_view()
        self.captured_view.set_image(frame.image)
        reference = self.reference_image if recipe.use_reference else None
        self.inference.submit(InspectionRequest(self.inspection.request_id, frame.image, reference, want_attention=True))
        self._refresh()

    def _capture_refusal(self) -> str:
        if self.operator is None:
            return "Sign in first: every inspection is recorded under an operator."
        if self._recipe is None:
            return "The recipe's models are not loaded yet."
        if self.latest_frame is None:
            return "No frame yet: start a source."
        if not self._frame_fresh:
            return "The source is stopped: no fresh frame to classify. Start it again (or wait for the camera)."
        if self.is_classifying:
            return "Busy: still classifying the previous capture — this press was ignored."
        if self._recipe.use_reference and self.reference_image is None:
            return "This recipe compares against a reference: set the reference image first."
        if self._pending_audit_for_inspection():
            return "Busy: the audit record is still being written — this press was ignored."
        return chip_id_problem(self.panel.chip_fields.values(), self._recipe)

    def _settle_unreleased(self) -> None:
        """F12 on an accepted chip that was never released: ask, and record the answer."""
        inspection = self.inspection
        choice = self.ask_choice(
            "Chip not released",
            f"{inspection.chip_label} is {inspection.stage.value} but not released "
            f"(record #{inspection.verdict_entry_id}). Release it to {inspection.decap_method} decapsulation now, "
            "or set it aside (recorded: it does not go to decapping)? Then scan the next chip.",
            [RELEASE_NOW, SET_ASIDE, CANCEL],
        )
        if choice == RELEASE_NOW:
            self.release_to_decapping()
        elif choice == SET_ASIDE:
            self.set_aside("new capture before release", self.operator)

    def _flash_busy(self, message: str) -> None:
        self._busy_note = message
        self.statusBar().showMessage(message, 5000)
        self._busy_message_timer.start()
        self._refresh()

    def _restore_busy_label(self) -> None:
        self._busy_note = ""
        self._refresh()

    def _on_chip_edited(self) -> None:
        """New IDs mean a new part: an undecided result of the old IDs is dropped (nothing was recorded)."""
        inspection = self.inspection
        if inspection is None or inspection.stage.value not in ("classifying", "failed", "captured"):
            return
        if inspection.result is None and inspection.error is None:
            self.inference.cancel(inspection.request_id)
        self.inspection = None
        self._awaiting_paint = False
        self.captured_view.set_image(None)
        self.statusBar().showMessage(f"IDs changed: the result of {inspection.chip_label} was dropped "
                                     "(no verdict was given). Capture again.", 8000)
        self._refresh()

    def _on_result(self, result) -> None:
        if self.inspection is None or result.request_id != self.inspection.request_id:
            return  # a stale result
        self.inspection.result = result
        self._render_captured()
        self._awaiting_paint = True
        self._refresh()
        self.inspection_updated.emit()

    def _on_captured_painted(self) -> None:
        """The result is on screen: the capture-to-result time the panel shows is measured here."""
        if not self._awaiting_paint or self.inspection is None:
            return
        self._awaiting_paint = False
        self._latency_ms = (time.perf_counter() - self._capture_started) * 1000.0
        log.info("capture-to-result %.1f ms (request %d)", self._latency_ms, self.inspection.request_id)
        self._refresh()
        self.capture_painted.emit(self._latency_ms)

    def _on_request_failed(self, request_id: int, message: str) -> None:
        if self.inspection is None or request_id != self.inspection.request_id:
            return
        self.inspection.error = message
        self.notify("Classification failed", message)
        self._refresh()
        self.inspection_updated.emit()

    # -- verdict and release ----------------------------------------------------------
    def _may_decide(self) -> bool:
        inspection = self.inspection
        if inspection is None or not inspection.can_give_verdict or self._pending_audit_for_inspection():
            return False
        if not inspection.owned_by(self.operator):
            self._flash_busy(f"This result belongs to {inspection.owner.operator_id}: sign in again to hand it over.")
            return False
        if not inspection.chip.get("chip_id") and not inspection.no_id_reason:
            self._flash_busy("No chip ID: scan or type it, then capture again.")
            return False
        return True

    def accept_result(self) -> None:
        if not self._may_decide():
            return
        inspection = self.inspection
        if inspection.can_accept:
            self._write_verdict(inspection.verdict_draft(self.operator, Verdict.ACCEPT))
        elif inspection.can_accept_signed:  # a result routed to a person: an expert accepts it, signed
            call = inspection.result.material
            what = (f"Accept the call {display_name(call.material)} ({call.confidence:.0%}) for {inspection.chip_label}, "
                    f"{inspection.routing.banner}" if call is not None else f"Accept the findings for {inspection.chip_label}")
            signature = self.ask_signature(Permission.ACCEPT_UNCERTAIN, what)
            if signature is not None and self._may_decide():
                self._signed_verdict(Verdict.ACCEPT, signature=signature)

    def override_result(self) -> None:
        if not self._may_decide():
            return
        inspection = self.inspection
        call = inspection.result.material
        if not inspection.goes_to_decapping:
            materials = []  # an inspection-only recipe: the operator overrides the findings
        else:
            materials = list(call.classes) if call is not None else sorted(inspection.recipe.decap_methods)
        dialog = OverrideDialog(materials, call.material if call is not None else "", self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.override_with(*dialog.values())

    def override_with(self, material: str, reason: str) -> None:
        """The override, once an expert (or admin) signed it."""
        if not (self._may_decide() and reason.strip()):
            return
        inspection = self.inspection
        call = inspection.result.material
        said = display_name(call.material) if call is not None else "the findings"
        signature = self.ask_signature(Permission.OVERRIDE, f"Override {inspection.chip_label}: {said} → "
                                       f"{display_name(material) if material else 'corrected findings'}. "
                                       f"Reason: {reason.strip()}")
        if signature is not None and self._may_decide():
            self._signed_verdict(Verdict.OVERRIDE, material, reason, signature)

    def _signed_verdict(self, verdict: Verdict, material: str | None = None, reason: str = "", signature=None) -> None:
        try:
            draft = self.inspection.verdict_draft(self.operator, verdict, material, reason, signature=signature)
        except PermissionDenied as exc:
            self.notify("Not allowed", str(exc))
            return
        self._write_verdict(draft)

    def hold_result(self) -> None:
        if not self._may_decide():
            return
        reason = self.ask_reason("Hold — do not decap", f"Why is {self.inspection.chip_label} held?",
                                 "e.g. cracked lid, needs the expert's eye")
        if reason:
            self.hold_with(reason)

    def hold_with(self, reason: str) -> None:
        if not reason.strip():
            self._flash_busy("A hold needs a reason: nothing was recorded.")
            return
        if self._may_decide():
            self._write_verdict(self.inspection.verdict_draft(self.operator, Verdict.REJECT_HOLD, reason=reason))

    def _write_verdict(self, draft: EntryDraft) -> None:
        inspection = self.inspection

        def committed(entry: AuditEntry) -> None:
            inspection.commit_verdict(draft, entry.id)
            if inspection.verdict is Verdict.REJECT_HOLD or not inspection.goes_to_decapping:
                self.panel.chip_fields.clear()

        self._record_note = "Writing the audit record…"
        self._append_audit(draft, committed, inspection=True)

    def release_to_decapping(self) -> None:
        inspection = self.inspection
        if inspection is None or self._pending_audit_for_inspection():
            return
        if not (inspection.can_release or inspection.can_release_held):
            return
        if not inspection.owned_by(self.operator):
            self._flash_busy(f"This chip belongs to {inspection.owner.operator_id}: sign in again to hand it over.")
            return
        signature = None
        if inspection.can_release_held:  # an expert releases a held chip, signed
            signature = self.ask_signature(
                Permission.RELEASE_HELD, f"Release the held chip {inspection.chip_label} to {inspection.decap_method} "
                f"decapsulation (held: {inspection.reason or 'no reason recorded'}).")
            if signature is None or self.inspection is not inspection or not inspection.can_release_held:
                return
        try:
            draft = inspection.release_draft(self.operator, signature=signature)
        except PermissionDenied as exc:
            self.notify("Not allowed", str(exc))
            return

        def committed(entry: AuditEntry) -> None:
            inspection.release_entry_id = entry.id
            self.panel.chip_fields.clear()
            self.captured_view.set_image(None)

        self._record_note = "Writing the release record…"
        self._append_audit(draft, committed, inspection=True)

    def set_aside(self, why: str, operator: Operator) -> None:
        """The pending result goes nowhere: recorded as a DISCARD with ``why``."""
        inspection = self.inspection

        def committed(entry: AuditEntry) -> None:
            inspection.discarded_entry_id = entry.id
            self.panel.chip_fields.clear()
            self.captured_view.set_image(None)

        self._append_audit(inspection.discard_draft(operator, why), committed, inspection=True)

    # -- audit ------------------------------------------------------------------------
    def _append_audit(self, draft: EntryDraft, on_committed: Callable[[AuditEntry], None] | None = None, *,
                      inspection: bool = False) -> int:
        ticket = next(self._tickets)
        self._pending_audit[ticket] = (draft, on_committed, inspection)
        self._audit_append.emit(ticket, draft)
        self._show_audit_state()
        self._refresh()
        return ticket

    def _pending_audit_for_inspection(self) -> bool:
        return any(flag for _, _, flag in self._pending_audit.values())

    def _on_audit_committed(self, ticket: int, entry: AuditEntry) -> None:
        draft, on_committed, for_inspection = self._pending_audit.pop(ticket, (None, None, False))
        if on_committed is not None:
            on_committed(entry)
        if for_inspection:
            self._record_note = ""
        self.note_committed(entry)
        self._refresh()
        self.audit_committed.emit(entry)
        self.inspection_updated.emit()

    def _on_audit_failed(self, ticket: int, message: str) -> None:
        draft, _, for_inspection = self._pending_audit.pop(ticket, (None, None, False))
        action = action_title(draft.action.value) if draft is not None else "entry"
        # the worker has just said why when the lab's server is gone: keep that in the status bar
        if not self._audit_unreachable:
            self._audit_problem = "WRITE FAILED"
        self._show_audit_state()
        if for_inspection:
            self._record_note = f"NOT recorded — release stays blocked.\n{message}"
        self.notify(
            "Audit record not written",
            f"The {action} record could not be written, so nothing was recorded and the chip "
            f"cannot be released to decapping.\n\n{message}\n\nFix what the message names (free disk space, "
            "the data folder's permissions, or the connection to the lab's log server), then give the verdict again.",
            critical=True,
        )
        self._refresh()
        self.audit_failed.emit(message)
        self.inspection_updated.emit()

    def note_committed(self, entry: AuditEntry) -> None:
        """An entry is on the log, written by this window, another of the station's (batch review) or
        the users worker (failed sign-ins, locks, model approvals): the status bar names the latest.
        The writer threads answer in any order, so an older entry's late answer does not replace a
        newer one."""
        if self._latest_entry is None or entry.id >= self._latest_entry.id:
            self._latest_entry = entry
        if self._audit_problem == "WRITE FAILED":  # the log writes again
            self._audit_problem = ""
        self._audit_note = ""
        self._show_audit_state()

    def _show_audit_state(self) -> None:
        """The status bar's audit label, from the log's state: a write under way, a log that cannot
        store (release blocked), else the latest committed entry."""
        latest = self._latest_entry
        problem = self._audit_problem
        if self._pending_audit:
            text = "Audit: writing…"
        elif problem:
            text = f"Audit: {problem}"
        elif self._audit_note:
            text = f"Audit: {self._audit_note}"
        elif latest is not None:
            text = f"Audit: #{latest.id} {action_title(latest.action)}"
        else:
            text = "Audit: ready"
        self.audit_label.setText(text)
        self.audit_label.setStyleSheet("color:#b00020;font-weight:bold;" if problem else "")
        if latest is not None:
            self.audit_label.setToolTip(f"{self._audit_location}\nlast record #{latest.id}: {latest.action}".strip())
        else:
            self.audit_label.setToolTip(self._audit_location)
