"""ONNX export (``station export``) run in ONNX Runtime matches the torch models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

from helpers_models import make_tiny_classifier, make_tiny_detector
from station.ml.cards import load_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from station.ml.onnx_export import export_onnx  # noqa: E402
from station.ml.onnx_runtime import OnnxClassifier, OnnxDetector, load_onnx  # noqa: E402


def _station(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported_classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    make_tiny_classifier(folder / "cls", size=64)
    result = _station("export", "--model", str(folder / "cls"), "--format", "onnx", "--out", str(folder / "cls.onnx"))
    assert result.returncode == 0, result.stderr
    assert "dynamic batch" in result.stdout
    return folder / "cls", folder / "cls.onnx"


def test_classifier_logits_match_for_any_batch(exported_classifier: tuple[Path, Path]) -> None:
    model_dir, onnx_file = exported_classifier
    runner = load_onnx(onnx_file, threads=1)
    assert isinstance(runner, OnnxClassifier) and runner.card.name == "tiny-material"
    model, card = load_model(model_dir)
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 3):
        images = torch.randn(batch, *card.input_size, generator=generator)
        with torch.inference_mode():
            expected = model(images)
        assert torch.allclose(runner(images), expected, atol=1e-3), f"batch {batch}"


def test_detector_detections_match_after_nms(tmp_path: Path) -> None:
    # a random-init head scores about prior (0.01) x quality (0.5): a low threshold keeps boxes to compare
    card = make_tiny_detector(tmp_path / "det", size=96, score=0.002, max_det=50)
    export_onnx(tmp_path / "det", tmp_path / "det.onnx", opset=17)
    runner = load_onnx(tmp_path / "det.onnx", threads=1)
    assert isinstance(runner, OnnxDetector)
    model, _ = load_model(tmp_path / "det")
    images = torch.rand(2, *card.input_size, generator=torch.Generator().manual_seed(1))
    options = {"score_thresh": card.thresholds.score, "nms_iou": card.thresholds.nms_iou, "max_det": card.thresholds.max_det}
    expected = model.predict(images, **options)
    found = runner.predict(images, **options)
    assert sum(len(d["labels"]) for d in expected) > 0, "the stand-in detector found nothing to compare"
    for ours, theirs in zip(found, expected):
        assert torch.equal(ours["labels"], theirs["labels"])
        assert len(ours["boxes"]) == len(theirs["boxes"])
        if len(ours["boxes"]):
            assert float(box_iou(ours["boxes"], theirs["boxes"]).diagonal().min()) >= 0.99


def test_cti_graph_has_no_hypot_and_keeps_the_batch_dynamic(exported_classifier: tuple[Path, Path]) -> None:
    import onnx

    graph = onnx.load(str(exported_classifier[1])).graph
    assert not any("hypot" in node.op_type.lower() for node in graph.node)
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_export_of_a_broken_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _station("export", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "x.onnx"))
    assert result.returncode == 1
    assert result.stderr.startswith("station export:") and "Traceback" not in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_a_foreign_onnx_file_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["images"], ["logits"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="not written by `station export`"):
        load_onnx(tmp_path / "foreign.onnx")
