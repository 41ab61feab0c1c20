"""Audit exports: CSV and JSON parse back, the JSON re-verifies by hand, the PDF is a PDF."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.audit import GENESIS_HASH, Action, AuditLog, EntryDraft, Verdict, canonical_json, entry_hash, verify
from station.audit.export import CSV_COLUMNS, export, report_html, summarize
from station.cli import main as station_main

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def station_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STATION_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def db_path(tmp_path) -> Path:
    path = tmp_path / "log" / "audit.sqlite3"
    rng = np.random.default_rng(3)
    with AuditLog(path, station_id="lab-µ") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
        for i, material in enumerate(("plastic", "ceramic", "metallic")):
            log.append(EntryDraft(
                Action.CLASSIFY,
                operator_id="jdoe",
                chip_id=f"C-{i}",
                image=rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),
                probabilities={material: 0.9},
                predicted_material=material,
                uncertain=i == 2,
                defects=[{"class": "crack", "score": 0.8, "box": [1, 2, 3, 4]}],
            ))
        log.append(EntryDraft(Action.VERDICT, operator_id="jdoe", chip_id="C-0", material="plastic", verdict=Verdict.ACCEPT))
        log.append(EntryDraft(
            Action.OVERRIDE,
            operator_id="jdoe",
            chip_id="C-1",
            predicted_material="ceramic",
            material="metallic",
            verdict="override",
            reason="=HYPERLINK(\"x\") is what the label said; Ø 2 µm",
        ))
        log.append(EntryDraft(Action.RELEASE, operator_id="jdoe", chip_id="C-1", decap_method="laser"))
    return path


def test_summary_counts(db_path):
    with AuditLog(db_path, readonly=True) as log:
        summary = summarize(log.query())
    assert summary.n_entries == 7 and summary.stations == ("lab-µ",)
    assert summary.by_action == {"CLASSIFY": 3, "OVERRIDE": 1, "RELEASE": 1, "SIGN_IN": 1, "VERDICT": 1}
    assert summary.by_material == {"(none)": 2, "ceramic": 1, "metallic": 2, "plastic": 2}
    assert summary.by_verdict == {"(none)": 5, "accept": 1, "override": 1}


def test_csv_export_parses(db_path, tmp_path):
    out = tmp_path / "out" / "audit.csv"
    assert station_main(["audit", "export", "--format", "csv", "--out", str(out), "--db", str(db_path)]) == 0
    with out.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["id"]) for r in rows] == list(range(1, 8))
    assert rows[0]["station_id"] == "lab-µ" and rows[0]["utc_offset"][0] in "+-"
    assert json.loads(rows[1]["probabilities"]) == {"plastic": 0.9}
    assert rows[3]["uncertain"] == "true"
    assert rows[5]["reason"].startswith("'=HYPERLINK")  # a spreadsheet must not run it
    assert rows[6]["decap_method"] == "laser"


def test_json_export_rechecks_by_hand(db_path, tmp_path):
    out = tmp_path / "audit.json"
    assert station_main(["audit", "export", "--format", "json", "--out", str(out), "--db", str(db_path)]) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["verification"]["ok"] and document["summary"]["n_entries"] == 7
    prev = GENESIS_HASH
    for entry in document["entries"]:  # the recipe documented in the export itself
        record = {k: v for k, v in entry.items() if k not in ("prev_hash", "hash", "signature")}
        assert entry["prev_hash"] == prev and entry["hash"] == entry_hash(prev, canonical_json(record))
        public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["signing_key"]))
        public_key.verify(bytes.fromhex(entry["signature"]), f"station-audit-head:{entry['id']}:{entry['hash']}".encode())
        prev = entry["hash"]
    assert document["verification"]["head_hash"] == prev
    head = document["signed_head"]
    assert head["anchor"] == f"7:{prev}" and head["signature"] == document["entries"][-1]["signature"]
    assert head["public_key"] == document["entries"][-1]["signing_key"] and len(head["fingerprint"]) == 16
    assert document["entries"][5]["reason"].startswith("=HYPERLINK")  # exact text


def test_export_period_filters(db_path, tmp_path):
    with AuditLog(db_path, readonly=True) as log:
        day = log.get(1).local_time.date()
    out = tmp_path / "none.json"
    result = export("json", out, db_path=db_path, to=str(day - timedelta(days=1)))
    assert result.n_entries == 0 and json.loads(out.read_text())["entries"] == []
    result = export("json", out, db_path=db_path, from_=str(day), to=str(day))
    assert result.n_entries == 7
    with pytest.raises(ValueError, match="unknown export format"):
        export("xlsx", out, db_path=db_path)


def test_export_of_a_broken_log_says_so(db_path, tmp_path, capsys):
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET payload = replace(payload, 'laser', 'acid') WHERE id = 7")
    conn.close()
    out = tmp_path / "audit.json"
    assert station_main(["audit", "export", "--format", "json", "--out", str(out), "--db", str(db_path)]) == 1
    assert "FAILED at entry 7" in capsys.readouterr().err
    assert json.loads(out.read_text())["verification"]["first_bad_id"] == 7
    html = report_html([], verification=verify(db_path))
    assert "FAILED at entry 7" in html and "No entries in this period" in html


def test_report_html_has_header_counts_and_thumbnails(db_path):
    with AuditLog(db_path, readonly=True) as log:
        entries = log.query()
    html = report_html(
        entries, verification=verify(db_path), period=("2026-05-01", None), source=db_path, data_dir=db_path.parent
    )
    assert "lab-µ" in html and "PASSED" in html and "2026-05-01" in html
    assert "Signed by station lab-µ" in html and "Key of station lab-µ" in html
    assert html.count("data:image/png;base64,") == 3
    assert "UNCERTAIN" in html and "Ceramic &rarr; Metallic" in html and "Crack 0.80" in html
    # the screens' words, and the recorded name where it differs (CSV, JSON and `audit list` show that one)
    assert "Released to decap<br><span class='small'>RELEASE</span>" in html
    assert all(f">{counted}<" in html for counted in ("Accepted (VERDICT)", "Plastic", "Accept", "Override", "(none)"))
    assert "=HYPERLINK(&quot;x&quot;)" in html  # escaped, not markup


def test_the_report_words_a_signature_and_a_time_as_the_entry_form_does(tmp_path):
    """Both come from station.labels: the PDF once left out who signed an override."""
    from helpers_users import signature_for

    from station.labels import recorded_time_text, signature_text
    from station.users import Permission

    path = tmp_path / "signed.sqlite3"
    signature = signature_for(Permission.OVERRIDE).to_dict()
    with AuditLog(path, station_id="lab") as log:
        entry = log.append(EntryDraft(Action.OVERRIDE, operator_id="jdoe", chip_id="C-1", predicted_material="ceramic",
                                      material="metallic", verdict="override", reason="checked under the stereo "
                                      "microscope", details={"signature": signature}))
    html = report_html([entry], verification=verify(path))
    signed = signature_text(signature, entry.local_time.tzinfo)
    assert signed.startswith("Erin Expert (E001, expert) — override approved, 2026-05-09 ")
    assert f"signed by {signed}" in html
    assert recorded_time_text(entry.local_time, entry.utc_offset) in html and f"(UTC{entry.utc_offset})" in html


def test_write_pdf_renders_tables_and_images(qapp, tmp_path):
    from station.reports.pdf import write_pdf

    import cv2

    image_path = tmp_path / "chip.png"
    cv2.imwrite(str(image_path), np.full((20, 30, 3), 200, np.uint8))
    out = write_pdf(
        f"<h1>Report</h1><table border='1'><tr><td>µ</td><td><img src='{image_path}'></td></tr></table>",
        tmp_path / "sub" / "report.pdf",
        title="Report",
    )
    assert out.read_bytes().startswith(b"%PDF")
    assert not list(out.parent.glob(".*.tmp"))


def test_pdf_export_cli_runs_headless(db_path, tmp_path):
    # A fresh process with no QApplication: write_pdf must create its own, off screen.
    out = tmp_path / "report.pdf"
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["STATION_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-m", "station", "audit", "export", "--format", "pdf", "--out", str(out), "--db", str(db_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:5] == b"%PDF-"
    assert out.stat().st_size > 5_000  # text, tables and three thumbnails


def test_report_table_limit_is_stated(db_path):
    with AuditLog(db_path, readonly=True) as log:
        entries = log.query()
    html = report_html(entries, verification=verify(db_path), max_rows=2, data_dir=db_path.parent)
    assert "first 2 of the 7 entries" in html and "listed entries" in html
    assert html.count("data:image/png;base64,") == 1  # entry 2 has an image; 3 and 4 are not listed
    assert "<td>1</td>" in html and "<td>3</td>" not in html
