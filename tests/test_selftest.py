"""`station selftest` end to end, with tiny stand-ins for the bundled demo models."""

from __future__ import annotations

import json
import sys

from helpers_models import make_tiny_classifier, make_tiny_detector

from station.cli import main


def test_selftest_passes_every_stage_and_writes_a_verified_audit_entry(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STATION_ALLOW_UNAPPROVED_MODELS")  # approval is reported, not required
    models = tmp_path / "models"
    make_tiny_classifier(models / "cti-ic-material")
    make_tiny_detector(models / "wbam-ffem-ic")
    monkeypatch.setenv("STATION_MODELS", str(models))
    assert main(["selftest", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and [s["name"] for s in report["stages"]] == ["synth", "capture", "inference", "render", "audit"]
    assert "verified" in report["stages"][-1]["summary"]
    assert "not approved for use yet: tiny-material, tiny-defects" in report["stages"][2]["summary"]


def test_selftest_names_the_missing_model_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STATION_MODELS", str(tmp_path / "empty"))
    assert main(["selftest", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "FAIL inference" in out and "cti-ic-material" in out and "selftest FAILED" in out


def test_selftest_runs_a_template_recipe_with_the_frame_as_its_own_template(tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    make_tiny_detector(models / "wbam-ffem-deeppcb", input_mode="gray+ref")
    monkeypatch.setenv("STATION_MODELS", str(models))
    assert main(["selftest", "--device", "cpu", "--recipe", "Bare PCB (DeepPCB)", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"], report


def _aravis_installed() -> bool:
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis  # noqa: F401
    except (ImportError, ValueError):
        return False
    return True


def _tiny_demo_models(tmp_path, monkeypatch):
    models = tmp_path / "models"
    make_tiny_classifier(models / "cti-ic-material")
    make_tiny_detector(models / "wbam-ffem-ic")
    monkeypatch.setenv("STATION_MODELS", str(models))


def _selftest_json(capsys, *options: str) -> tuple[int, dict]:
    code = main(["selftest", "--device", "cpu", "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def test_selftest_lists_the_optional_parts_it_checked_and_those_it_skipped_with_why(tmp_path, monkeypatch, capsys):
    _tiny_demo_models(tmp_path, monkeypatch)
    code, report = _selftest_json(capsys)
    assert code == 0 and report["ok"], report
    checked = {c["name"]: c for c in report["checked"]}
    genicam = ["genicam"] if _aravis_installed() else []
    assert list(checked) == ["synth", "capture", "inference", "render", "audit", *genicam, "users", "signing-key",
                             "pdf-export"]
    assert all(c["ok"] and c["seconds"] >= 0 and c["detail"] for c in checked.values())
    assert "DejaVu Sans" in checked["pdf-export"]["detail"]
    assert "argon2 hashes" in checked["users"]["detail"] and "Ed25519 key" in checked["signing-key"]["detail"]
    skipped = {s["name"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) >= {"postgresql", "onnxruntime"}
    assert "no audit_url" in skipped["postgresql"] and "batch_onnxruntime is off" in skipped["onnxruntime"]
    if not genicam:
        assert "GenICam" in skipped["genicam"]


def test_selftest_reads_the_users_and_their_password_hashes(tmp_path, monkeypatch, capsys):
    from station.audit import AuditLog
    from station.users import UserDirectory

    _tiny_demo_models(tmp_path, monkeypatch)
    with AuditLog() as audit_log:
        UserDirectory(audit_log).add_first_admin("A001", "Ada Admin", "correct horse battery 9")
    code, report = _selftest_json(capsys)
    users = next(c for c in report["checked"] if c["name"] == "users")
    assert code == 0 and users["ok"] and users["detail"].startswith("1 users read from"), users


def test_selftest_checks_onnx_runtime_when_the_settings_use_it(tmp_path, monkeypatch, capsys):
    from station.config import load_settings, save_settings

    _tiny_demo_models(tmp_path, monkeypatch)
    settings = load_settings()
    settings.batch_onnxruntime = True
    save_settings(settings)
    code, report = _selftest_json(capsys)
    onnx = next(c for c in report["checked"] if c["name"] == "onnxruntime")
    assert code == 0 and onnx["ok"] and "sessions built for tiny-material, tiny-defects" in onnx["detail"], onnx


def test_a_missing_module_fails_its_part_by_name_and_the_exit_code(tmp_path, monkeypatch, capsys):
    _tiny_demo_models(tmp_path, monkeypatch)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    monkeypatch.setitem(sys.modules, "argon2", None)
    code, report = _selftest_json(capsys, "--onnxruntime")
    failed = {c["name"]: c["detail"] for c in report["checked"] if not c["ok"]}
    assert code == 1 and not report["ok"]
    assert set(failed) == {"onnxruntime", "users"}, failed
    assert failed["onnxruntime"].startswith("missing module 'onnxruntime'")
    assert failed["users"].startswith("missing module 'argon2'")


def test_selftest_checks_the_lab_log_schema_read_only(tmp_path, monkeypatch, capsys, lab_database):
    from station.audit import AuditLog

    _tiny_demo_models(tmp_path, monkeypatch)
    with AuditLog(lab_database.station_url, readonly=True) as lab_log:
        before = lab_log.verify().n_entries
    code, report = _selftest_json(capsys, "--audit-url", lab_database.station_url)
    postgresql = next(c for c in report["checked"] if c["name"] == "postgresql")
    assert code == 0 and postgresql["ok"], postgresql
    assert "schema checked read-only" in postgresql["detail"] and "binary implementation" in postgresql["detail"]
    assert "bench-secret" not in json.dumps(report)  # the password is redacted
    with AuditLog(lab_database.station_url, readonly=True) as lab_log:
        assert lab_log.verify().n_entries == before


def test_selftest_probes_genicam_where_pygobject_and_aravis_are_installed(tmp_path, monkeypatch, capsys):
    import pytest

    if sys.platform != "linux":
        pytest.skip("Aravis 0.8 and its fake camera are Debian packages: Linux only")
    assert _aravis_installed(), "PyGObject with Aravis 0.8: scripts/install-system-deps.sh and the dev extra install them"
    _tiny_demo_models(tmp_path, monkeypatch)
    code, report = _selftest_json(capsys)
    genicam = next(c for c in report["checked"] if c["name"] == "genicam")
    assert code == 0 and genicam["ok"] and "Aravis 0.8" in genicam["detail"], genicam
