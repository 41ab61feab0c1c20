"""A bundled detector against YOLO11n with both under ONNX Runtime (and both under torch), one run.

    PYTHONPATH=/tmp/ultra:$PWD python benchmarks/detector_latency_onnx.py models/wbam-ffem-neu --threads 1
    # /tmp/ultra: pip install --no-deps --target /tmp/ultra ultralytics ultralytics-thop

The detector is exported with ``station export``'s code and timed through ``predict()`` (dense
outputs, threshold, NMS); YOLO11n (random weights, fused, from its yaml) through its forward
only, at the detector's card size. The four calls run in interleaved rounds, so a change in
load hits all alike. Issue 26's budget: the detector at its card size at most 0.6× YOLO11n.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import onnxruntime
import torch

from station.ml.cards import load_model
from station.ml.onnx_export import export_onnx
from station.ml.onnx_runtime import load_onnx

from onnx_latency import interleaved_times  # benchmarks/ is the script's own folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    model, card = load_model(args.folder)
    size = card.input_size[1]
    yolo = YOLO("yolo11n.yaml").model.fuse().eval()
    yolo_input = torch.rand(1, 3, size, size)
    images = torch.rand(1, *card.input_size)
    options = {"score_thresh": card.thresholds.score, "nms_iou": card.thresholds.nms_iou,
               "max_det": card.thresholds.max_det}
    with tempfile.TemporaryDirectory() as scratch:
        export_onnx(args.folder, Path(scratch) / "detector.onnx")
        ours = load_onnx(Path(scratch) / "detector.onnx", threads=args.threads)
        torch.onnx.export(yolo, yolo_input, Path(scratch) / "yolo11n.onnx", opset_version=17,
                          input_names=["images"], dynamo=False)
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = args.threads
        session_options.inter_op_num_threads = 1
        yolo_session = onnxruntime.InferenceSession(str(Path(scratch) / "yolo11n.onnx"), session_options,
                                                    providers=["CPUExecutionProvider"])
        calls = {
            f"{card.name} onnxruntime predict": lambda: ours.predict(images, **options),
            f"{card.name} torch predict": lambda: model.predict(images, **options),
            "yolo11n onnxruntime forward": lambda: yolo_session.run(None, {"images": yolo_input.numpy()}),
            "yolo11n torch forward": lambda: yolo(yolo_input),
        }
        times = interleaved_times(calls, args.rounds, args.warmup)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:40s} median {medians[name]:6.2f} ms  p90 {sorted(values)[int(0.9 * len(values))]:6.2f} ms")
    names = list(calls)
    print(f"at {size}x{size}, {args.threads} thread(s), {args.rounds} rounds: onnxruntime/onnxruntime "
          f"{medians[names[0]] / medians[names[2]]:.2f}x, torch/torch {medians[names[1]] / medians[names[3]]:.2f}x "
          f"(load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
