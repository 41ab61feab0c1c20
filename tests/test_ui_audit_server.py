"""The window names an unreachable lab log server at once, and a record that cannot be stored
keeps the chip from release."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402

from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return make_tiny_recipe(tmp_path_factory.mktemp("models"))


def test_unreachable_lab_server_is_named_at_once(qtbot, recipe, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once it closes
    monkeypatch.setenv("STATION_AUDIT_URL", f"postgresql://bench:secret@127.0.0.1:{port}/lab")
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.notified, timeout=20_000) as shown:
            window.show()
        title, message = shown.args
        assert title == "Lab audit log unreachable" and "cannot be reached" in message and "secret" not in message
        assert "UNREACHABLE" in window.audit_label.text() and "release blocked" in window.audit_label.text()
        assert window._audit_status_timer.isActive()  # tried again until it is back
    finally:
        window.shutdown()
