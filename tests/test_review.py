"""Batch-folder review without Qt: scan, pipelined runner, resumable store, verdicts, exports, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_review import BROKEN, copy_folder, make_review_setup, write_recipe_file
from helpers_users import signature_for

from station.audit import Action, AuditLog, Verdict
from station.capture.images import read_image
from station.capture.scale import Objective
from station.inference import Engine, InspectionRequest
from station.review.export import summarize, summary_html, write_csv, write_json
from station.review.runner import BatchRunner, RunControl, RunOptions
from station.review.scan import ScannedFile, FolderScan, scan_folder
from station.review.store import BatchStore, ItemOutcome, ItemState
from station.review.thumbnails import ThumbnailCache
from station.review.verdicts import BatchContext, VerdictError, VerdictRequest, commit_verdict, refusal
from station.users import Permission
from station.workflow import Operator

OPERATOR = Operator("op-3", "Grace Reviewer")
OVERRIDE_SIGNATURE = signature_for(Permission.OVERRIDE)


@pytest.fixture(scope="module")
def review_setup(tmp_path_factory):
    return make_review_setup(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def engine(review_setup):
    _, _, recipe = review_setup
    with Engine(recipe, device="cpu", warm_up=False) as engine:
        yield engine


def _run(engine, folder, *, attention=False, control=None, on_progress=None, lanes=None):
    scan = scan_folder(folder)
    store = BatchStore.for_folder(scan.folder, engine.recipe.name)
    options = RunOptions(want_attention=attention, inference_lanes=lanes)
    runner = BatchRunner(engine, store, scan.folder, options=options, control=control)
    work = runner.plan(scan)
    return store, work, runner.run(work, on_progress)


def test_scan_lists_images_then_unsupported_files_and_skips_hidden(review_setup, tmp_path):
    folder, names, _ = review_setup
    scan = scan_folder(folder)
    listed = [f.relative_path for f in scan.files]
    assert listed[: scan.n_images] == sorted([*names, "empty.jpg", "text.png", "truncated.jpg"])
    assert listed[scan.n_images :] == ["notes.txt"]
    assert ".hidden.png" not in listed
    nested = tmp_path / "nested"
    (nested / "sub").mkdir(parents=True)
    (nested / "a.png").write_bytes(b"")
    (nested / "sub" / "b.png").write_bytes(b"")
    assert [f.relative_path for f in scan_folder(nested).files] == ["a.png"]
    assert [f.relative_path for f in scan_folder(nested, recursive=True).files] == ["a.png", "sub/b.png"]


@pytest.mark.parametrize("lanes", [1, 2])
def test_run_lists_every_file_with_results_or_reasons(review_setup, engine, lanes):
    folder, names, _ = review_setup
    progress = []
    store, work, summary = _run(engine, folder, lanes=lanes, on_progress=lambda p, ids: progress.append((p, ids)))
    with store:
        rows = {r.relative_path: r for r in store.rows()}
        assert summary.inspected == len(names) and summary.errors == len(BROKEN) - 1 and not summary.cancelled
        assert progress[-1][0].done == progress[-1][0].total == len(work) == len(names) + 3
        assert sorted(i for _, ids in progress for i in ids) == sorted(w.item_id for w in work)
        for name, reason in BROKEN.items():
            assert rows[name].is_error and reason in rows[name].error, (name, rows[name].error)
        for name in names:
            row = rows[name]
            assert row.is_done and row.material in engine.recipe.decap_methods and row.sha256
            assert ThumbnailCache().has(row.sha256)
        flags = [(r.uncertain, r.has_defects) for r in rows.values() if r.is_done]
        assert {u for u, _ in flags} == {True, False} and {d for _, d in flags} == {True, False}
        record = store.record(rows[names[0]].item_id)
        assert record.result.image_size == read_image(folder / names[0]).shape[:2]


# A batch's kernels may round differently from a single image's: equal up to fp32 rounding on
# the CPU, up to the autocast precision (devices.autocast) on CUDA.
PARITY_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
PARITY_TOLERANCE = {"cpu": {"p": 1e-5, "box": 1e-2, "map": 1e-4}, "cuda": {"p": 5e-3, "box": 0.5, "map": 2e-2}}


@pytest.mark.parametrize("device", PARITY_DEVICES)
def test_single_and_batched_paths_give_the_same_results(review_setup, device):
    folder, names, recipe = review_setup
    tolerance = PARITY_TOLERANCE[device]
    images = [read_image(folder / name) for name in names[:4]]
    with Engine(recipe, device=device, warm_up=False) as engine:
        batched = engine.run_batch([engine.prepare(image, request_id=i) for i, image in enumerate(images)])
        singles = [engine.run(InspectionRequest(i, image, want_attention=True)) for i, image in enumerate(images)]
        mapped = engine.run_batch([engine.prepare(image, request_id=i) for i, image in enumerate(images[:2])],
                                  want_attention=True)
    assert any(single.defects for single in singles) and [r.request_id for r in batched] == [0, 1, 2, 3]
    for index, single in enumerate(singles):
        result = batched[index]
        assert result.attention is None and result.image_size == single.image_size
        assert result.material.material == single.material.material
        assert result.material.uncertain == single.material.uncertain
        np.testing.assert_allclose(result.material.probabilities, single.material.probabilities, atol=tolerance["p"])
        assert [d.label for d in result.defects] == [d.label for d in single.defects]
        for a, b in zip(result.defects, single.defects):
            np.testing.assert_allclose(a.box, b.box, atol=tolerance["box"])
            assert a.score == pytest.approx(b.score, abs=tolerance["p"])
    for result, single in zip(mapped, singles):
        for ours, theirs in ((result.attention.material, single.attention.material),
                             (result.attention.defects, single.attention.defects)):
            assert ours is not None and ours.shape == theirs.shape == single.image_size
            np.testing.assert_allclose(ours, theirs, atol=tolerance["map"])


def test_reopening_resumes_and_recomputes_only_changed_files(review_setup, engine, tmp_path):
    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "copy")
    store, _, first = _run(engine, folder)
    store.close()
    assert first.inspected == len(names)

    store, work, again = _run(engine, folder)
    store.close()
    assert work == [] and again.inspected == 0

    # same content, new mtime: hashed again, not recomputed
    touched = folder / names[1]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 5_000_000_000))
    # new content: recomputed
    changed = folder / names[2]
    changed.write_bytes((folder / names[3]).read_bytes())
    store, work, third = _run(engine, folder)
    with store:
        assert sorted(w.relative_path for w in work) == sorted([names[1], names[2]])
        assert third.inspected == 1 and third.unchanged == 1
        rows = {r.relative_path: r for r in store.rows()}
        assert rows[names[2]].sha256 == rows[names[3]].sha256
        assert rows[names[1]].state == ItemState.DONE.value

    # other thresholds (another fingerprint): everything is computed again
    stricter = dataclasses.replace(engine.recipe, uncertain_below=0.99)
    with Engine(stricter, device="cpu", warm_up=False) as other:
        store, work, fourth = _run(other, folder)
        store.close()
    assert fourth.inspected == len(names)


def test_cancel_keeps_finished_files_and_the_rerun_finishes_the_rest(review_setup, engine, tmp_path):
    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "cancelled", names)
    control = RunControl()
    store, work, summary = _run(engine, folder, control=control, on_progress=lambda p, ids: control.cancel())
    with store:
        assert summary.cancelled and 0 < summary.inspected < len(names)
        assert store.counts().pending == len(names) - summary.inspected
    store, work, rest = _run(engine, folder)
    store.close()
    assert len(work) == rest.inspected == len(names) - summary.inspected


def test_pause_blocks_until_resumed(review_setup, engine, tmp_path):
    import threading

    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "paused", names[:3])
    control = RunControl()
    control.pause()
    seen_paused = threading.Event()

    def on_progress(progress, ids):
        if progress.paused:
            seen_paused.set()
            control.resume()

    store, _, summary = _run(engine, folder, control=control, on_progress=on_progress)
    store.close()
    assert seen_paused.is_set() and summary.inspected == 3


def test_attention_maps_are_stored_small(review_setup, engine, tmp_path):
    from station.review.maps import MAP_SIDE, load_maps

    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "maps", names[:1])
    store, _, summary = _run(engine, folder, attention=True, lanes=2)  # the lane runs its own engine copy
    with store:
        record = store.record(store.rows()[0].item_id)
        assert summary.inspected == 1 and record.has_maps
        with np.load(store.map_path(record.row.sha256)) as stored:
            assert max(stored["material"].shape) <= MAP_SIDE and stored["material"].dtype == np.uint8
        maps = load_maps(store.map_path(record.row.sha256), (record.height, record.width))
        assert maps.material.shape == (record.height, record.width)
        assert 0.0 <= maps.material.min() and maps.material.max() <= 1.0


def test_lanes_with_maps_run_on_the_runs_onnx_runtime(review_setup, tmp_path):
    pytest.importorskip("onnxruntime")
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "onnx-maps", names[:4])
    with Engine(recipe, device="cpu", warm_up=False, backend="onnxruntime") as onnx_engine:
        store, _, summary = _run(onnx_engine, folder, attention=True, lanes=2)
    with store:
        records = [store.record(row.item_id) for row in store.rows()]
    assert summary.inspected == 4 and all(record.has_maps for record in records)
    assert all(record.result.device.endswith("ONNX Runtime") for record in records)  # no lane fell to torch


def test_verdicts_write_one_audit_entry_each(review_setup, engine, tmp_path):
    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "verdicts", names)
    store, _, _ = _run(engine, folder)
    context = BatchContext(folder.resolve(), store.directory, dict(engine.recipe.decap_methods),
                           objective=Objective("20x", 0.5))
    rows = store.rows()
    sure = next(r for r in rows if not r.uncertain)
    unsure = next(r for r in rows if r.uncertain)
    with store, AuditLog() as audit_log:
        entry, row = commit_verdict(audit_log, store, context, sure.item_id, VerdictRequest((sure.item_id,), Verdict.ACCEPT, OPERATOR))
        accepted_id = entry.id
        assert entry.action == Action.BATCH_VERDICT.value and entry.verdict == "accept"
        assert entry.material == sure.material and entry.predicted_material == sure.material
        assert entry.details["file"] == sure.relative_path and entry.details["file_sha256"] == sure.sha256
        assert entry.details["objective"] == {"name": "20x", "um_per_px": 0.5}  # the scale of its defects' sizes
        assert entry.image_sha256 and audit_log.image_file(entry.image_path).is_file()
        assert entry.models and entry.thresholds["uncertain_below"] == engine.recipe.uncertain_below
        assert row.review == "accepted" and row.audit_entry_id == entry.id

        with pytest.raises(VerdictError, match="uncertain"):
            commit_verdict(audit_log, store, context, unsure.item_id, VerdictRequest((unsure.item_id,), Verdict.ACCEPT, OPERATOR))
        with pytest.raises(VerdictError, match="cannot be overridden without the electronic signature of an expert"):
            commit_verdict(audit_log, store, context, unsure.item_id,
                           VerdictRequest((unsure.item_id,), Verdict.OVERRIDE, OPERATOR, "metallic", "gold lid"))
        assert not audit_log.query(action=Action.BATCH_VERDICT, verdict=Verdict.OVERRIDE)
        with pytest.raises(VerdictError, match="reason"):
            commit_verdict(audit_log, store, context, unsure.item_id,
                           VerdictRequest((unsure.item_id,), Verdict.OVERRIDE, OPERATOR, "metallic", " ", signature=OVERRIDE_SIGNATURE))
        other = next(m for m in engine.recipe.decap_methods if m != unsure.material)
        entry, row = commit_verdict(audit_log, store, context, unsure.item_id,
                                    VerdictRequest((unsure.item_id,), Verdict.OVERRIDE, OPERATOR, other, "gold lid", signature=OVERRIDE_SIGNATURE))
        assert entry.verdict == "override" and entry.material == other and entry.reason == "gold lid"
        assert entry.decap_method == engine.recipe.decap_methods[other]
        assert row.review == "overridden" and row.reviewed_material == other

        # a second decision is a correction of the first
        entry, row = commit_verdict(audit_log, store, context, sure.item_id,
                                    VerdictRequest((sure.item_id,), Verdict.OVERRIDE, OPERATOR, other, "second look", signature=OVERRIDE_SIGNATURE))
        assert entry.action == Action.CORRECTION.value and entry.refers_to == accepted_id
        assert row.review == "overridden" and row.audit_entry_id == entry.id
        # the file changed since it was inspected: nothing is written
        target = next(r for r in rows if not r.is_reviewed and not r.uncertain and r.item_id != sure.item_id)
        (folder / target.relative_path).write_bytes((folder / unsure.relative_path).read_bytes())
        count = audit_log.count()
        with pytest.raises(VerdictError, match="changed since"):
            commit_verdict(audit_log, store, context, target.item_id, VerdictRequest((target.item_id,), Verdict.ACCEPT, OPERATOR))
        assert audit_log.count() == count
        assert audit_log.verify().ok


def test_exports_parse(review_setup, engine, tmp_path):
    folder, names, _ = review_setup
    store, _, run = _run(engine, folder)
    with store:
        csv_path = write_csv(store, tmp_path / "report.csv")
        with csv_path.open(encoding="utf-8-sig", newline="") as stream:
            rows = list(csv.DictReader(stream))
        assert len(rows) == len(names) + len(BROKEN)
        by_file = {r["file"]: r for r in rows}
        assert by_file["empty.jpg"]["status"] == "error" and "0 bytes" in by_file["empty.jpg"]["error"]
        assert by_file["notes.txt"]["status"] == "error"
        ok = by_file[names[0]]
        assert ok["status"] == "ok" and float(ok["confidence"]) > 0 and ok["p_plastic"] != ""
        assert isinstance(json.loads(ok["defects"]), list)
        summary = summarize(store, run)
        data = json.loads(write_json(summary, tmp_path / "summary.json").read_text())
        assert data["n_images"] == len(names) + len(BROKEN) and data["n_errors"] == len(BROKEN)
        assert data["images_per_s"] == summary.images_per_s and data["n_inspected"] == len(names)
        html = summary_html(store, summary)
        assert "Batch review summary" in html and "notes.txt" in html and "<img src=" in html


def test_store_stays_light_over_10000_rows(tmp_path):
    """The table's rows cost well under a kilobyte each, and exports stream record by record."""
    store = BatchStore(tmp_path / "store").open()
    files = tuple(ScannedFile(f"img{i:05d}.png", 1000 + i, 10**18 + i, True) for i in range(10_000))
    store.sync(FolderScan(tmp_path, False, files))
    result = {
        "request_id": 0, "recipe": "r", "image_size": [960, 1280],
        "material": {"material": "plastic", "confidence": 0.9, "uncertain": False, "decap_method": "acid",
                     "probabilities": {"plastic": 0.9, "ceramic": 0.05, "metallic": 0.05}},
        "defects": [{"box": [1.0, 2.0, 3.0, 4.0], "label": "void", "score": 0.5}] * 5,
        "models": [{"name": "m", "sha256": "0" * 64}], "thresholds": {"uncertain_below": 0.6}, "device": "cpu",
        "timings_ms": {"total": 1.0},
    }
    store.write_outcomes(
        ItemOutcome(w.item_id, 1000, 1, f"{w.item_id:064x}", ItemState.DONE, fingerprint="f", width=1280, height=960,
                    material="plastic", confidence=0.9, uncertain=False, n_defects=5, top_defect_label="void",
                    top_defect_score=0.5, result=result)
        for w in store.work_items()
    )
    tracemalloc.start()
    rows = store.rows()
    rows_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(rows) == 10_000 and rows_bytes / len(rows) < 1024
    del rows
    tracemalloc.start()
    streamed = sum(1 for _ in store.iter_records())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert streamed == 10_000 and peak < 2 * 1024 * 1024  # the results (MBs of JSON) are never all in memory
    with write_csv(store, tmp_path / "big.csv").open(encoding="utf-8-sig") as stream:
        assert sum(1 for _ in stream) == 1 + 10_000
    assert store.counts().done == 10_000
    store.close()


def test_headless_command(review_setup, tmp_path, capsys):
    from station.cli import main

    folder, names, recipe = review_setup
    recipe_file = write_recipe_file(recipe, tmp_path / "recipe.json")
    out, summary = tmp_path / "report.csv", tmp_path / "summary.json"
    code = main(["batch", str(folder), "--recipe", str(recipe_file), "--out", str(out), "--json", str(summary),
                 "--device", "cpu", "--no-attention"])
    assert code == 0
    with out.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(names) + len(BROKEN)
    assert sum(r["status"] == "error" for r in rows) == len(BROKEN)
    assert all(r["error"] for r in rows if r["status"] == "error")
    data = json.loads(summary.read_text())
    assert data["n_images"] == len(names) + len(BROKEN) and data["n_errors"] == len(BROKEN)
    assert data["images_per_s"] > 0
    # the second run resumes: nothing to compute, same report
    assert main(["batch", str(folder), "--recipe", str(recipe_file), "--out", str(out), "--json", str(summary),
                 "--device", "cpu", "--no-attention", "--quiet"]) == 0
    assert json.loads(summary.read_text())["n_inspected_this_run"] == 0
    assert main(["batch", str(tmp_path / "missing"), "--recipe", str(recipe_file), "--out", str(out)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_reference_recipes_need_the_template_and_track_it(review_setup, tmp_path):
    from helpers_models import make_tiny_detector

    from station.inference import Recipe

    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "boards", names[:2])
    make_tiny_detector(tmp_path / "ref-detector", input_mode="rgb+ref")
    recipe = Recipe(name="Tiny board recipe", detector=str(tmp_path / "ref-detector"), use_reference=True)
    template = read_image(folder / names[0])
    with Engine(recipe, device="cpu", warm_up=False) as engine:
        store, _, without = _run(engine, folder)
        with store:
            assert without.errors == 2 and all("template" in r.error for r in store.rows())

        def run_with(reference):
            scan = scan_folder(folder)
            with BatchStore.for_folder(scan.folder, recipe.name) as store:
                runner = BatchRunner(engine, store, scan.folder, options=RunOptions(want_attention=False, reference=reference))
                return runner.run(runner.plan(scan))

        assert run_with(template).inspected == 2
        assert run_with(template).inspected == 0  # same template: nothing to redo
        assert run_with(np.ascontiguousarray(template[::-1])).inspected == 2  # another template: redone


def test_an_inspection_only_recipe_overrides_findings_with_a_reason(review_setup, tmp_path):
    from helpers_models import make_tiny_detector

    from station.inference import Recipe

    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "plain", names[:1])
    make_tiny_detector(tmp_path / "detector")
    recipe = Recipe(name="Tiny detector-only recipe", detector=str(tmp_path / "detector"))
    with Engine(recipe, device="cpu", warm_up=False) as engine:
        store, _, _ = _run(engine, folder)
    context = BatchContext(folder.resolve(), store.directory, {})
    row = store.rows()[0]
    with store, AuditLog() as audit_log:
        with pytest.raises(VerdictError, match="reason"):
            commit_verdict(audit_log, store, context, row.item_id,
                           VerdictRequest((row.item_id,), Verdict.OVERRIDE, OPERATOR, None, " ", signature=OVERRIDE_SIGNATURE))
        entry, row = commit_verdict(audit_log, store, context, row.item_id,
                                    VerdictRequest((row.item_id,), Verdict.OVERRIDE, OPERATOR, "", "a scratch, missed", signature=OVERRIDE_SIGNATURE))
        assert entry.verdict == "override" and entry.material is None and entry.decap_method is None
        assert entry.reason == "a scratch, missed" and row.review == "overridden"
        assert audit_log.verify().ok


@pytest.mark.parametrize("attention", [False, True])
def test_a_frame_failing_the_image_check_is_flagged_for_a_person(review_setup, tmp_path, attention):
    import cv2

    from station.inference.image_check import ImageCheck

    source, names, recipe = review_setup
    folder = tmp_path / "stage"
    folder.mkdir()
    (folder / "part.png").write_bytes((source / names[0]).read_bytes())
    cv2.imwrite(str(folder / "empty_stage.png"), np.full((120, 160, 3), 118, np.uint8))
    checked = dataclasses.replace(recipe, image_check=ImageCheck())
    with Engine(checked, device="cpu", warm_up=False) as engine:
        store, _, summary = _run(engine, folder, attention=attention)
    with store:
        rows = {r.relative_path: r for r in store.rows()}
        empty = rows["empty_stage.png"]
        assert summary.inspected == 2 and empty.uncertain and not empty.is_confident_and_clean
        assert "nearly uniform" in store.record(empty.item_id).result.image_problems[0]
        assert store.record(rows["part.png"].item_id).result.image_problems == ()
        assert "cannot be accepted" in refusal(empty, Verdict.ACCEPT)
        with write_csv(store, tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as stream:
            table = list(csv.DictReader(stream))
    flagged = {row["file"]: row["image_problems"] for row in table}
    assert "nearly uniform" in flagged["empty_stage.png"] and not flagged["part.png"]


def test_the_onnxruntime_backend_gives_the_torch_results(review_setup, tmp_path):
    pytest.importorskip("onnxruntime")
    folder, names, recipe = review_setup
    images = [read_image(folder / name) for name in names[:4]]
    with Engine(recipe, device="cpu", warm_up=False) as torch_engine, \
            Engine(recipe, device="cpu", warm_up=False, backend="onnxruntime") as onnx_engine:
        assert onnx_engine.device_description.endswith("ONNX Runtime")
        expected = torch_engine.run_batch([torch_engine.prepare(image, request_id=i) for i, image in enumerate(images)])
        found = onnx_engine.run_batch([onnx_engine.prepare(image, request_id=i) for i, image in enumerate(images)])
        mapped = onnx_engine.run(InspectionRequest(9, images[0], want_attention=True))  # maps: torch's graph
    assert mapped.attention is not None and mapped.attention.material is not None
    assert any(result.defects for result in expected)
    for ours, theirs in zip(found, expected):
        assert ours.material.material == theirs.material.material and ours.material.uncertain == theirs.material.uncertain
        np.testing.assert_allclose(ours.material.probabilities, theirs.material.probabilities, atol=1e-4)
        assert [d.label for d in ours.defects] == [d.label for d in theirs.defects]
        for a, b in zip(ours.defects, theirs.defects):
            np.testing.assert_allclose(a.box, b.box, atol=1e-2)
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_the_onnxruntime_backend_is_for_the_cpu_and_named(review_setup):
    _, _, recipe = review_setup
    with pytest.raises(ValueError, match="backend must be one of"):
        Engine(recipe, device="cpu", warm_up=False, backend="tensorrt")


def test_headless_command_with_the_onnxruntime_backend(review_setup, tmp_path):
    pytest.importorskip("onnxruntime")
    from station.cli import main

    folder, names, recipe = review_setup
    recipe_file = write_recipe_file(recipe, tmp_path / "recipe.json")
    reports = {}
    for backend in ("torch", "onnxruntime"):
        copy = copy_folder(folder, tmp_path / backend)
        out = tmp_path / f"{backend}.csv"
        assert main(["batch", str(copy), "--recipe", str(recipe_file), "--out", str(out), "--device", "cpu",
                     "--no-attention", "--quiet", "--backend", backend]) == 0
        with out.open(encoding="utf-8-sig", newline="") as stream:
            reports[backend] = [(r["file"], r["status"], r["material"], r["n_defects"]) for r in csv.DictReader(stream)]
    assert reports["onnxruntime"] == reports["torch"] and len(reports["torch"]) == len(names) + len(BROKEN)


def test_dataset_from_batch_takes_the_reviewed_items(review_setup, engine, tmp_path, capsys):
    from station.cli import main
    from station.training.datasets import read_dataset

    source, names, _ = review_setup
    folder = copy_folder(source, tmp_path / "reviewed", names)
    store, _, _ = _run(engine, folder)
    context = BatchContext(folder.resolve(), store.directory, dict(engine.recipe.decap_methods))
    rows = store.rows()
    sure = next(r for r in rows if not r.uncertain)
    other = next(m for m in engine.recipe.decap_methods if m != sure.material)
    unsure = next(r for r in rows if r.uncertain)
    with store, AuditLog() as audit_log:
        commit_verdict(audit_log, store, context, sure.item_id, VerdictRequest((sure.item_id,), Verdict.ACCEPT, OPERATOR))
        commit_verdict(audit_log, store, context, unsure.item_id,
                       VerdictRequest((unsure.item_id,), Verdict.OVERRIDE, OPERATOR, other, "gold lid",
                                      signature=OVERRIDE_SIGNATURE))
    out = tmp_path / "dataset"
    assert main(["dataset", "from-batch", str(folder), "--recipe", engine.recipe.name, "--out", str(out)]) == 0
    assert "wrote 2 images" in capsys.readouterr().out
    index = read_dataset(out, "folder")
    assert sorted(index.classes[s.label] for s in index.samples) == sorted([sure.material, other])


def test_dataset_from_batch_predictions_are_the_batch_results_for_an_annotation_tool(review_setup, engine, tmp_path,
                                                                                    capsys):
    from station.cli import main
    from station.ml.cards import load_card
    from station.training.datasets import read_dataset

    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "results", names)
    store, _, _ = _run(engine, folder)
    context = BatchContext(folder.resolve(), store.directory, dict(engine.recipe.decap_methods))
    with store:
        rows = {r.relative_path: r for r in store.rows() if r.is_done}
        results = {r.row.relative_path: r.result for r in store.iter_records() if r.row.is_done}
        overridden = next(r for r in rows.values() if r.uncertain)
        other = next(m for m in engine.recipe.decap_methods if m != overridden.material)
        with AuditLog() as audit_log:
            commit_verdict(audit_log, store, context, overridden.item_id,
                           VerdictRequest((overridden.item_id,), Verdict.OVERRIDE, OPERATOR, other, "gold lid",
                                          signature=OVERRIDE_SIGNATURE))
    assert any(result.defects for result in results.values())
    out = tmp_path / "coco"
    recipe_file = write_recipe_file(recipe, tmp_path / "recipe.json")  # a recipe file, as station batch takes it
    assert main(["dataset", "from-batch", str(folder), "--recipe", str(recipe_file), "--predictions",
                 "--format", "coco", "--out", str(out)]) == 0
    assert f"wrote {len(rows)} images" in capsys.readouterr().out
    document = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    detector_classes = load_card(recipe.detector).classes
    assert sorted(c["name"] for c in document["categories"]) == sorted(detector_classes)  # boxes of any class can be drawn
    index = read_dataset(out, "coco")
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    for sample, row in zip(index.samples, manifest):
        # boxes of no area (clipped to the image edge) are not written: no reader keeps them
        defects = [d for d in results[row["batch_item"]].defects if d.box[2] > d.box[0] and d.box[3] > d.box[1]]
        np.testing.assert_allclose(sample.boxes, np.asarray([d.box for d in defects], np.float32).reshape(-1, 4),
                                   atol=1e-4)
        assert [index.classes[label] for label in sample.labels] == [d.label for d in defects]
    assert document["annotations"] and all(0 < a["score"] <= 1 for a in document["annotations"])  # the model's scores
    by_item = {row["batch_item"]: row for row in manifest}
    assert by_item[overridden.relative_path]["label"] == other and by_item[overridden.relative_path]["review"] == "overridden"
    assert sum(row["review"] is None for row in manifest) == len(rows) - 1  # unreviewed results are in too
