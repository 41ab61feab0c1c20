"""The batch review window driven through pytest-qt: progress, table, filters, keyboard decisions
and bulk accept -> audit entries, pause/cancel, resume after closing, exports."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("PySide6")

from helpers_review import BROKEN, copy_folder, make_review_setup  # noqa: E402
from helpers_users import expert_signs  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QDialog  # noqa: E402

from station import paths  # noqa: E402
from station.audit import Action, AuditLog  # noqa: E402
from station.config import Settings  # noqa: E402
from station.ui import batch_window  # noqa: E402
from station.ui.batch_window import BatchReviewWindow  # noqa: E402
from station.workflow import Operator  # noqa: E402

OPERATOR = Operator("op-9", "Ada Reviewer")
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def review_setup(tmp_path_factory):
    return make_review_setup(tmp_path_factory.mktemp("ui-review"))


def _window(qtbot, recipe, operator=OPERATOR, **settings):
    window = BatchReviewWindow(Settings(recipe=recipe.name, device="cpu", **settings), {recipe.name: recipe}, operator,
                               ask_signature=expert_signs)
    qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())
    window.show()
    return window


def _run(qtbot, window, folder, **options):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.open_folder(folder, **options)
    return finished.args[0]


def _audit_entries(action=None):
    with AuditLog(readonly=True) as audit_log:
        return audit_log.query(action=action)


def test_run_shows_progress_table_filters_and_detail(qtbot, review_setup, tmp_path):
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "folder")
    window = _window(qtbot, recipe, objectives={"5x": 2.0}, objective="5x")
    assert not window.models_button.isEnabled()  # no models loaded yet
    summary = _run(qtbot, window, folder, want_attention=True)
    assert window.models_button.isEnabled()
    window.show_model_cards()
    assert window.cards_dialog.tabs.count() == 2 and "not been validated" in window.cards_dialog.tabs.widget(1).toPlainText()

    files = len(names) + len(BROKEN)
    assert summary.inspected == len(names) and not summary.cancelled
    assert window.progress_bar.value() == window.progress_bar.maximum() == len(names) + 3
    assert "Done" in window.progress_label.text()
    # the line agrees with the red rows: notes.txt was never opened, the other three failed in this run
    assert "3 errors; 1 other file in error" in window.progress_label.text()
    assert window.model.rowCount() == window.proxy.rowCount() == files
    rows = window.model.rows()
    errors = {r.relative_path: r for r in rows if r.is_error}
    assert set(errors) == set(BROKEN)
    empty_row = window.model.source_row_of(errors["empty.jpg"].item_id)
    assert "0 bytes" in window.model.index(empty_row, 2).data()

    done = [r for r in rows if r.is_done]
    window.uncertain_filter.setChecked(True)
    assert window.proxy.rowCount() == sum(1 for r in done if r.uncertain) > 0
    window.uncertain_filter.setChecked(False)
    window.defects_filter.setChecked(True)
    assert window.proxy.rowCount() == sum(1 for r in done if r.has_defects) > 0
    assert all(r.has_defects for r in window.proxy.visible_rows())
    window.defects_filter.setChecked(False)
    window.unreviewed_filter.setChecked(True)
    assert window.proxy.rowCount() == len(done)
    window.unreviewed_filter.setChecked(False)
    window.name_filter.setText("part0")
    assert window.proxy.rowCount() == len(names)
    window.name_filter.clear()

    with_defects = next(r for r in done if r.has_defects)
    with qtbot.waitSignal(window.detail_loaded, timeout=10_000):
        assert window.select_item(with_defects.item_id)
    assert window.detail.has_image and window.detail.title.text() == with_defects.relative_path
    assert window.detail.overlay_controls.attention.isEnabled()  # maps were stored with the run
    assert window.detail.results.defects.rowCount() == with_defects.n_defects
    x1, y1, x2, y2 = window.detail.result.defects[0].box
    assert window.context.objective.name == "5x"  # sizes in µm at the objective the folder was opened with
    assert window.detail.results.defects.item(0, 3).text() == f"{(x2 - x1) * 2:.0f} × {(y2 - y1) * 2:.0f}"
    # keyboard navigation moves the detail along
    with qtbot.waitSignal(window.detail_loaded, timeout=10_000):
        window.table.setFocus()
        qtbot.keyClick(window.table, Qt.Key.Key_Down)
    assert window.detail.item_id != with_defects.item_id


def test_keys_and_bulk_accept_write_one_audit_entry_per_item(qtbot, review_setup, tmp_path, monkeypatch):
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "folder")
    window = _window(qtbot, recipe)
    _run(qtbot, window, folder, want_attention=True)  # bulk accept checks where the attention lies
    rows = window.model.rows()
    sure = next(r for r in rows if r.is_done and not r.uncertain)
    unsure = next(r for r in rows if r.uncertain)

    window.table.setFocus()
    window.select_item(unsure.item_id)
    qtbot.keyClick(window.table, Qt.Key.Key_A)  # refused: uncertain calls go to an expert
    assert "uncertain" in window.statusBar().currentMessage()
    assert not window.model.is_pending(unsure.item_id)

    window.select_item(sure.item_id)
    with qtbot.waitSignal(window.verdict_committed, timeout=10_000) as accepted:
        qtbot.keyClick(window.table, Qt.Key.Key_A)
    assert accepted.args[0].action == Action.BATCH_VERDICT.value and accepted.args[0].verdict == "accept"
    assert window.model.row_for(sure.item_id).review == "accepted"
    assert window.current_row().item_id != sure.item_id  # moved on to the next row

    other = next(m for m in recipe.decap_methods if m != unsure.material)

    class FilledOverrideDialog(batch_window.OverrideDialog):
        def exec(self):
            self.material.setCurrentIndex(self.material.findData(other))
            self.reason.setPlainText("ceramic lid under the label")
            return QDialog.DialogCode.Accepted

    monkeypatch.setattr(batch_window, "OverrideDialog", FilledOverrideDialog)
    window.select_item(unsure.item_id)
    with qtbot.waitSignal(window.verdict_committed, timeout=10_000) as overridden:
        qtbot.keyClick(window.table, Qt.Key.Key_O)
    entry = overridden.args[0]
    assert entry.verdict == "override" and entry.material == other and entry.reason == "ceramic lid under the label"
    assert window.model.row_for(unsure.item_id).reviewed_material == other

    candidates = [r for r in window.model.rows() if window.context.bulk_rule.refusal(r) is None]
    committed = []
    window.verdict_committed.connect(committed.append)
    assert window.bulk_accept_visible(confirm=False) == len(candidates) > 0
    qtbot.waitUntil(lambda: len(committed) == len(candidates), timeout=20_000)
    assert window.bulk_accept_visible(confirm=False) == 0  # nothing left to accept in bulk

    entries = _audit_entries(Action.BATCH_VERDICT)
    assert len(entries) == 2 + len(candidates)
    bulk = [e for e in entries if e.details.get("bulk")]
    assert sorted(e.details["file"] for e in bulk) == sorted(r.relative_path for r in candidates)
    assert all(e.operator_id == OPERATOR.operator_id and e.image_sha256 for e in entries)
    with AuditLog(readonly=True) as audit_log:
        assert audit_log.verify().ok


def test_no_operator_no_decisions(qtbot, review_setup, tmp_path):
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "folder", names[:3])
    window = _window(qtbot, recipe, operator=None)
    _run(qtbot, window, folder, want_attention=False)
    assert not window.bulk_button.isEnabled() and not window.detail.accept_button.isEnabled()
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_A)
    assert "Sign in" in window.statusBar().currentMessage()
    assert not paths.audit_db_path().exists()  # nothing was written
    window.set_operator(OPERATOR)
    assert window.bulk_button.isEnabled()


def test_pause_cancel_and_resume_after_closing(qtbot, review_setup, tmp_path):
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "folder")
    window = _window(qtbot, recipe)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.open_folder(folder, want_attention=False)
        window.pause()
        qtbot.waitUntil(lambda: "Paused" in window.progress_label.text(), timeout=RUN_TIMEOUT_MS)
        assert window.pause_button.isChecked() and window.cancel_button.isEnabled()
        window.cancel()
    assert finished.args[0].cancelled and finished.args[0].inspected == 0
    assert "open the folder again to resume" in window.progress_label.text()

    first = _run(qtbot, window, folder, want_attention=False)
    assert first.inspected == len(names)
    sure = next(r for r in window.model.rows() if r.is_done and not r.uncertain)
    window.select_item(sure.item_id)
    with qtbot.waitSignal(window.verdict_committed, timeout=10_000):
        window.accept_current()
    window.close()

    reopened = _window(qtbot, recipe)
    with qtbot.waitSignal(reopened.run_opened, timeout=RUN_TIMEOUT_MS) as opened, \
            qtbot.waitSignal(reopened.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        reopened.open_folder(folder, want_attention=False)
    assert opened.args[0].n_to_read == 0 and finished.args[0].inspected == 0  # nothing computed again
    assert reopened.model.row_for(sure.item_id).review == "accepted"
    assert reopened.model.rowCount() == len(names) + len(BROKEN)

    changed = folder / names[-1]
    changed.write_bytes((folder / names[0]).read_bytes())
    again = _run(qtbot, reopened, folder, want_attention=False)
    assert again.inspected == 1


def test_exports_from_the_window(qtbot, review_setup, tmp_path):
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "folder")
    window = _window(qtbot, recipe)
    _run(qtbot, window, folder, want_attention=False)
    with qtbot.waitSignal(window.export_finished, timeout=30_000) as written:
        window.export_csv(tmp_path / "out" / "report.csv")
    with open(written.args[1], encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(names) + len(BROKEN)
    assert {r["file"] for r in rows if r["status"] == "error"} == set(BROKEN)
    with qtbot.waitSignal(window.export_finished, timeout=60_000) as written:
        window.export_pdf(tmp_path / "out" / "summary.pdf")
    assert written.args[0] == "pdf"
    with open(written.args[1], "rb") as stream:
        assert stream.read(5) == b"%PDF-"


def test_table_holds_light_rows_and_a_bounded_thumbnail_cache(qtbot, tmp_path):
    import numpy as np

    from station.review.store import ItemRow
    from station.review.thumbnails import ThumbnailCache
    from station.ui.batch_model import THUMBNAIL_COLUMN, BatchFilterProxy, BatchTableModel

    thumbnails = ThumbnailCache(tmp_path / "thumbs")
    rows = []
    for i in range(10_000):
        sha = f"{i:064x}"
        if i < 600:
            thumbnails.write(sha, np.full((24, 32, 3), i % 255, np.uint8))
        rows.append(ItemRow(i + 1, f"img{i:05d}.png", "done", sha, "plastic", 0.5 + (i % 50) / 100, i % 3 == 0,
                            i % 4, 0.3 if i % 4 else None, None, "accepted" if i % 5 == 0 else None, None, None))
    model = BatchTableModel(thumbnails)
    proxy = BatchFilterProxy()
    proxy.setSourceModel(model)
    model.set_rows(rows)
    proxy.set_filters(uncertain_only=True)
    assert proxy.rowCount() == sum(1 for r in rows if r.uncertain)
    proxy.set_filters(uncertain_only=False, has_defects=True, not_reviewed=True)
    assert proxy.rowCount() == len(proxy.visible_rows()) == sum(1 for r in rows if r.n_defects and not r.review)
    for row in range(600):  # scrolling through the first 600 rows: every thumbnail is read once ...
        assert model.index(row, THUMBNAIL_COLUMN).data(Qt.ItemDataRole.DecorationRole) is not None
    assert len(model._pixmaps) <= 400  # ... and only the most recent few hundred stay in memory
    proxy.sort(3, Qt.SortOrder.DescendingOrder)  # by confidence, numerically
    top = proxy.index(0, 3).data()
    assert top == "99.0%"


def test_onnx_runtime_is_offered_with_and_without_maps(qtbot, review_setup, tmp_path):
    pytest.importorskip("onnxruntime")
    source, names, recipe = review_setup
    window = _window(qtbot, recipe)
    window.attention_check.setChecked(False)
    assert window.onnx_check.isEnabled()
    window.attention_check.setChecked(True)  # the detector's map comes from the graph, Grad-CAM from torch
    assert window.onnx_check.isEnabled() and "Grad-CAM" in window.onnx_check.toolTip()
    window.onnx_check.setChecked(True)
    assert window.settings.batch_onnxruntime  # remembered with the settings
    with qtbot.waitSignal(window.batch.opened, timeout=RUN_TIMEOUT_MS) as opened:
        summary = _run(qtbot, window, copy_folder(source, tmp_path / "onnx"), want_attention=True)
    assert "ONNX Runtime" in opened.args[0].device and summary.inspected == len(names)


def test_a_long_error_in_the_image_area_wraps_instead_of_being_cut_at_both_ends(qtbot):
    from station.ui.image_view import ImageView

    view = ImageView("unsupported file type '.jsonl' (not an image by its name): the batch review lists it as an error")
    qtbot.addWidget(view)
    view.resize(330, 400)
    image = view.grab().toImage()
    text_rows = [y for y in range(image.height())
                 if any(image.pixelColor(x, y).red() > 120 for x in range(0, image.width(), 2))]
    assert text_rows and text_rows[-1] - text_rows[0] > view.fontMetrics().height()  # two lines or more
    edge = [image.pixelColor(x, y).red() for y in text_rows for x in (0, 1, 2, image.width() - 2, image.width() - 1)]
    assert max(edge) < 60  # nothing drawn to the very edges: no word runs off the widget
