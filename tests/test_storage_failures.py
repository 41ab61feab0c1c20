"""The station on a read-only or full data disk: logging falls back to the console, the audit
log stays readable, writes fail with the reason, and stray archive temporaries are cleaned up.
Each case runs ``station`` as a user would (see ``helpers_storage``)."""

from __future__ import annotations

import errno
import logging
import os
import time

import numpy as np
import pytest

from helpers_storage import run_station_on_full_disk, run_station_read_only
from station import logs
from station.audit import Action, AuditLog, AuditWriteError, EntryDraft, verify
from station.audit import archive as archive_module
from station.cli import main as station_main
from station.storage import describe_os_error




@pytest.fixture
def home_with_a_log(station_home):
    """A STATION_HOME whose audit log holds one SELFTEST entry with its archived image."""
    with AuditLog(station_home / "data" / "audit.sqlite3", station_id="s", archive_dir=station_home / "data" / "archive") as log:
        log.append(EntryDraft(Action.SELFTEST, operator_id="selftest", image=np.full((8, 8, 3), 7, np.uint8)))
    (station_home / "logs").mkdir()
    return station_home


def test_audit_commands_work_on_a_read_only_home(home_with_a_log, tmp_path):
    home = home_with_a_log
    out = tmp_path / "export.csv"
    for argv, expected in (
        (["audit", "verify", "--images"], "hash chain intact"),
        (["audit", "list"], "selftest"),
        (["audit", "show", "1"], "image: ok"),
        (["audit", "export", "--format", "csv", "--out", str(out)], "wrote 1 entries"),
    ):
        done = run_station_read_only(home, *argv)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
        assert "Traceback" not in done.stderr
        assert "logging to the console only" in done.stderr and "read-only" in done.stderr
    assert out.read_text().count("\n") == 2


def test_an_empty_read_only_home_says_there_is_no_log(station_home):
    done = run_station_read_only(station_home, "audit", "verify")
    assert done.returncode == 2
    assert "no audit log at" in done.stderr and "Traceback" not in done.stderr


def test_selftest_on_a_read_only_home_names_the_read_only_log(home_with_a_log):
    done = run_station_read_only(home_with_a_log, "selftest")
    assert done.returncode == 1
    assert "FAIL audit" in done.stdout and "read-only" in done.stdout
    assert "Traceback" not in done.stderr


def test_selftest_on_a_full_disk_says_the_disk_is_full(station_home):
    done = run_station_on_full_disk(station_home, [["selftest"]], "selftest")
    assert done.returncode == 1
    assert "FAIL audit" in done.stdout and "the disk is full" in done.stdout, done.stdout + done.stderr
    assert "disk I/O error occurred" not in done.stdout.split("(")[0]
    assert "Traceback" not in done.stderr


def test_stray_archive_temporaries_are_removed_when_the_log_opens(home_with_a_log):
    archive = home_with_a_log / "data" / "archive"
    (image,) = [p for p in archive.rglob("*.png")]
    dead_writer = image.parent / f".{'a' * 64}.999999999.1.tmp"  # no such process
    recent_of_ours = image.parent / f".{'b' * 64}.{os.getpid()}.1.tmp"  # a thread of ours may be writing it
    old_of_ours = image.parent / f".{'c' * 64}.{os.getpid()}.2.tmp"
    for stray in (dead_writer, recent_of_ours, old_of_ours):
        stray.write_bytes(b"\x89PNG half")
    os.utime(old_of_ours, (time.time() - 3600, time.time() - 3600))
    assert station_main(["selftest"]) == 0
    assert not dead_writer.exists() and not old_of_ours.exists()
    assert recent_of_ours.exists()
    images = sorted(p.name for p in archive.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(images) == 2  # the first entry's image and the selftest's: no temporary among them
    assert verify(home_with_a_log / "data" / "audit.sqlite3").n_entries == 2


def test_a_failed_commit_on_a_full_disk_leaves_no_temporary(tmp_path, monkeypatch):
    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_module.os, "write", full_disk)
    with AuditLog(tmp_path / "audit.sqlite3", station_id="s") as log:
        with pytest.raises(AuditWriteError, match="the disk is full"):
            log.append(EntryDraft(Action.CLASSIFY, operator_id="jdoe", image=np.zeros((4, 4, 3), np.uint8)))
    assert not [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]


def test_a_log_file_that_cannot_be_written_falls_back_to_the_console(fresh_logging, station_home, capsys, monkeypatch):
    root = logs.setup_logging(console=False)  # the GUI: no console handler while the file works
    assert logs.log_file_problem() is None
    file_handler = next(h for h in root.handlers if isinstance(h, logging.FileHandler))

    file_handler.stream.close()
    file_handler.stream = _FullDisk()
    logging.getLogger("station.test").info("first")
    logging.getLogger("station.test").info("second")
    err = capsys.readouterr().err
    assert "the disk is full; logging to the console only" in err
    assert "second" in err and "Logging error" not in err
    assert "the disk is full" in logs.log_file_problem()
    assert file_handler not in root.handlers


class _FullDisk:
    """A log file's stream on a disk that has just filled up."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def tell(self):
        return 0

    def seek(self, *args):
        return 0

    def flush(self):
        pass

    def close(self):
        pass


def test_os_errors_in_an_operators_words():
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full"
    assert describe_os_error(OSError(errno.EROFS, "Read-only file system")) == "the disk is read-only"
    assert describe_os_error(OSError(errno.ENOENT, "No such file or directory")) == "No such file or directory"


def test_batch_review_on_a_full_disk_says_the_disk_is_full(station_home, tmp_path):
    import cv2

    from helpers_models import make_tiny_recipe
    from helpers_review import write_recipe_file
    from station.synth import render_package

    folder = tmp_path / "incoming"
    folder.mkdir()
    image = render_package(1, size=(96, 128)).image
    assert cv2.imwrite(str(folder / "part.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    recipe = write_recipe_file(make_tiny_recipe(tmp_path / "models"), tmp_path / "recipe.json")
    done = run_station_on_full_disk(station_home, [], "batch", str(folder), "--recipe", str(recipe),
                                    "--out", str(tmp_path / "report.csv"), "--device", "cpu", "--quiet")
    assert done.returncode == 1
    assert "batch store" in done.stderr and "the disk is full" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
