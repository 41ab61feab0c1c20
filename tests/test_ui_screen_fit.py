"""The operator's column fits a 1366×768 bench monitor: banner, material, five rows of defects
and the verdict buttons without scrolling (716 px is what a maximized window has there under a
title bar and a task bar), and every window opens inside the screen."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_users import expert_signs  # noqa: E402
from helpers_window import awaiting_result  # noqa: E402
from PySide6.QtCore import QPoint, QRect, QSize  # noqa: E402

from station.config import Settings  # noqa: E402
from station.inference import Defect  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.ui.screen_fit import available_geometry, fit_to_screen  # noqa: E402
from station.workflow import Operator  # noqa: E402

BENCH_SIZES = [(1366, 716), (1366, 768), (1920, 1050)]
LONG_REASON = ("gold lid visible under the paper label at 20x; checked twice under the stereo microscope "
               "with the ring light, and the lot's other chips are metallic too")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return dataclasses.replace(make_tiny_recipe(tmp_path_factory.mktemp("models")), uncertain_below=0.0)


@pytest.fixture
def window(qtbot, recipe):
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    window.sign_in(Operator("op-7", "Ada Tester with a rather long name"))
    window.ask_signature = expert_signs
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    window.panel.chip_fields.chip.setText("LM358-2431-SN0001")
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
    assert window.inspection.result is not None, window.inspection.error
    yield window
    window.shutdown()


def _with_many_defects(window) -> None:
    """Seven findings with the longest names the table shows, as a crowded package would give."""
    defects = [Defect((10.0 * i, 10.0, 10.0 * i + 8, 18.0), "chipped_edge", 0.9 - 0.05 * i,
                      alternatives=(("bent_lead", 0.41),)) for i in range(7)]
    window.inspection.result = dataclasses.replace(window.inspection.result, defects=defects)
    window._refresh()


def _rect_in_window(widget, window) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def _assert_fits(qtbot, window, size) -> None:
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size() == QSize(*size), timeout=2_000)
    qtbot.wait(20)  # the layout settles on the next event-loop turn
    usable = QRect(0, 0, window.width(), window.statusBar().mapTo(window, QPoint(0, 0)).y())
    panel, results = window.panel, window.panel.results
    key_widgets = {
        "banner": results.banner, "material": results.material_box, "defects": results.defects,
        "accept": panel.accept_button, "override": panel.override_button, "hold": panel.hold_button,
        "release": panel.release_button, "record": panel.record_label, "capture": panel.capture_button,
        "chip": panel.chip_fields.chip, "operator": panel.operator_label,
    }
    for name, widget in key_widgets.items():
        if widget is results.banner and not widget.isVisibleTo(window):
            continue
        assert widget.isVisible(), name
        rect = _rect_in_window(widget, window)
        assert usable.contains(rect), f"{name} at {rect} is outside {usable} in a {size} window"
        needed = widget.heightForWidth(widget.width()) if widget.hasHeightForWidth() else widget.minimumSizeHint().height()
        assert widget.height() >= needed, f"{name} squeezed to {widget.height()} px (needs {needed}) at {size}"
    table = results.defects
    rows_shown = table.viewport().height() // table.verticalHeader().defaultSectionSize()
    assert rows_shown >= 5, f"the defects table shows {rows_shown} rows at {size}"


@pytest.mark.parametrize("size", BENCH_SIZES)
def test_captured_result_fits_the_bench_monitor(qtbot, window, size):
    _with_many_defects(window)
    _assert_fits(qtbot, window, size)
    assert window.panel.results.defects.item(0, 0).text() == "Chipped edge (or Bent lead 0.41)"
    assert "chipped_edge" in window.panel.results.defects.item(0, 0).toolTip()


def test_overridden_and_held_results_with_long_reasons_fit(qtbot, window):
    call = window.inspection.result.material
    other = next(m for m in call.classes if m != call.material)
    with qtbot.waitSignal(window.audit_committed, timeout=10_000):
        window.override_with(other, LONG_REASON)
    qtbot.waitUntil(window.panel.release_button.isEnabled, timeout=5_000)
    _with_many_defects(window)
    for size in BENCH_SIZES:
        _assert_fits(qtbot, window, size)
    banner = window.panel.results.banner
    assert LONG_REASON in banner.toolTip() and banner.text().count("<br>") <= 2
    # the material line is the override's; the model's confidence is named as the model's
    assert window.panel.results.confidence_label.text().startswith("model said")

    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == "RELEASE"):
        window.panel.release_button.click()
    window.panel.chip_fields.chip.setText("LM358-2")
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == "REJECT_HOLD"):
        window.hold_with(LONG_REASON)
    _with_many_defects(window)
    for size in BENCH_SIZES[:2]:
        _assert_fits(qtbot, window, size)


LONG_SOURCE = "Source: Simulated microscope 640x480 @ 30 fps, new package every 4 s"
LONG_DEVICE = "Compute: CUDA: NVIDIA GeForce RTX 4090 Laptop GPU"
LONG_MESSAGE = ("Objective 20x from the next capture; the result on screen was taken at 5x and keeps its sizes "
                "(LM358-2431-SN0001)")


def _inside(bar, widgets) -> bool:
    return all(0 <= w.x() and w.geometry().right() < bar.width() for w in widgets)


@pytest.mark.parametrize("width", [1366, 1920])
def test_the_status_bar_labels_fit_and_a_message_is_read_whole(qtbot, window, width):
    """Seen at 1366×768: "Audit: #9 Sign in" cut at the right edge, and the messages cut short."""
    from PySide6.QtWidgets import QLabel

    window.resize(width, 716)
    bar = window.statusBar()
    window.source_label.setText(LONG_SOURCE)
    window.device_label.setText(LONG_DEVICE)
    labels = [window.source_label, window.fps_label, window.device_label, window.audit_label]
    audit = window.audit_label
    assert audit.text().startswith("Audit: #")

    def whole(label) -> bool:
        return label.width() >= QLabel.sizeHint(label).width()

    qtbot.waitUntil(lambda: bar.width() == width and _inside(bar, labels) and all(map(whole, labels)), timeout=2_000)

    bar.showMessage(LONG_MESSAGE)  # the source and the device give way, the audit label stays whole
    message_room = bar.fontMetrics().horizontalAdvance(LONG_MESSAGE)
    qtbot.waitUntil(lambda: window.source_label.x() - 8 >= message_room and _inside(bar, labels), timeout=2_000)
    assert whole(audit) and whole(window.fps_label)
    if width == 1366:  # elided now, its whole text in the tooltip
        assert not whole(window.source_label)
        window.source_label.repaint()
        assert LONG_SOURCE in window.source_label.toolTip()
    bar.clearMessage()
    qtbot.waitUntil(lambda: window.source_label.width() == window.source_label.natural_width(), timeout=2_000)


def test_the_main_window_opens_inside_a_small_screen(qtbot):
    window = MainWindow(Settings(), "CPU (test)", recipes={})
    qtbot.addWidget(window)
    available = available_geometry(window)  # the offscreen screen is smaller than 1500×900
    assert window.fills_screen
    assert window.width() <= available.width() and window.height() <= available.height()
    assert available.contains(QRect(window.pos(), window.size()))
    window.shutdown()


def test_fit_to_screen_keeps_a_dialog_inside_the_screen_over_its_parent(qtbot):
    from PySide6.QtWidgets import QDialog, QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    available = available_geometry(parent)
    dialog = QDialog(parent)
    assert fit_to_screen(dialog, QSize(available.width() + 400, available.height() + 300))
    assert available.contains(QRect(dialog.pos(), dialog.size()))
    assert not fit_to_screen(dialog, QSize(300, 200)) and dialog.size() == QSize(300, 200)
    assert available.contains(QRect(dialog.pos(), dialog.size()))


def test_the_sign_in_dialog_shows_its_whole_bottom_row_with_a_hint_and_an_error(qtbot):
    """Under Xvfb at 1366×768 with openbox the strip under the buttons is the window manager's
    frame handle; this keeps the dialog's own content (message, buttons) whole inside it."""
    from station.ui.users_dialogs import PasswordSignInDialog, UsersClient

    client = UsersClient()
    dialog = PasswordSignInDialog(client, hint="Demo accounts (password = ID): demo-tech (technician), "
                                               "demo-expert (expert), demo-admin (admin)")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.message.setText("ID or password is wrong (4 tries left before the account locks)")
    dialog.layout().activate()
    for widget in (dialog.message, dialog.buttons, dialog.ok_button, dialog.password):
        rect = QRect(widget.mapTo(dialog, QPoint(0, 0)), widget.size())
        assert dialog.rect().contains(rect), f"{widget.objectName() or widget} cut off: {rect} in {dialog.rect()}"
    assert dialog.height() >= dialog.minimumSizeHint().height()
    assert available_geometry(dialog).contains(dialog.frameGeometry())
    client.stop()


def test_a_long_refusal_grows_the_sign_in_dialog_instead_of_squeezing_its_labels(qtbot):
    """Seen on a station whose data folder is read-only: the worker's three-line answer was cut and
    the demo-accounts hint above it squeezed out of sight."""
    from station.ui.users_dialogs import PasswordSignInDialog, UsersClient

    client = UsersClient()
    dialog = PasswordSignInDialog(client, "demo-admin", hint="Demo accounts (password = ID): demo-tech (technician), "
                                                             "demo-expert (expert), demo-admin (admin)")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog._ticket = 41  # as if the worker had been asked
    dialog._on_answer(41, False, "could not open the audit log for writing at /tmp/station/data/audit.sqlite3: "
                                 "the audit log or its folder is read-only (check permissions and the data disk) "
                                 "(OperationalError: unable to open database file)")
    dialog.layout().activate()
    hint = dialog.findChild(type(dialog.message), "demoHint")
    for widget in (hint, dialog.message, dialog.buttons, dialog.password):
        rect = QRect(widget.mapTo(dialog, QPoint(0, 0)), widget.size())
        assert dialog.rect().contains(rect), f"{widget.objectName() or widget} cut off: {rect} in {dialog.rect()}"
        if widget.hasHeightForWidth():
            assert widget.height() >= widget.heightForWidth(widget.width()), f"{widget.objectName()} squeezed"
    client.stop()
