"""The ``station`` command.

``station`` (no subcommand) opens the GUI, ``station --demo`` opens it on the simulated
microscope. Every subcommand lives in its feature's own module, imported only when that
subcommand runs, so that starting the GUI never imports training code. A command module
provides ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys

from station import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "gui": ("station.app", "open the station window (the default)"),
    "synth": ("station.synth.cli", "render synthetic IC package images (optionally with defects)"),
    "selftest": ("station.selftest", "headless end-to-end check of every stage; exit 0 when healthy"),
    "models": ("station.ml.cli", "list registered model configs and bundled models; `models info NAME`; `models limitations DIR`; `models approve DIR` (admin)"),
    "train": ("station.training.cli_train", "train a classifier or detector on a dataset"),
    "dataset": ("station.training.from_records", "the lab's reviewed decisions (audit log or batch review) as a training set"),
    "predict": ("station.training.cli_predict", "a model's predictions on a folder as COCO, YOLO, VOC, LabelMe or class folders (for annotation tools)"),
    "evaluate": ("station.training.cli_evaluate", "evaluate a trained model on a dataset"),
    "calibrate": ("station.training.cli_calibrate", "re-fit a model card's threshold/temperature on its validation split"),
    "bench": ("station.bench", "benchmarks: latency (inference), table2 / ablation / detectors (paper tables, peers)"),
    "audit": ("station.audit.cli", "verify or export the audit log"),
    "users": ("station.users.cli", "add, list, disable, enable, passwd, role: the station's users (admin only)"),
    "cameras": ("station.capture.cli", "the attached cameras (OpenCV/V4L2 and GenICam), each with the spec --source takes"),
    "objectives": ("station.capture.objectives_cli", "the microscope objectives and their µm/px; `objectives calibrate NAME IMAGE --pitch-um P` from a stage micrometer"),
    "batch": ("station.review.cli", "headless batch-folder review to CSV/JSON"),
    "export": ("station.ml.onnx_export", "export a model folder to ONNX (dynamic batch) for ONNX Runtime, OpenVINO, X-AnyLabeling"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to fill in its options."""
    parser = argparse.ArgumentParser(
        prog="station",
        description="IC inspection station: packaging-material classification and micro-defect detection.",
    )
    parser.add_argument("--version", action="version", version=f"station {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.set_defaults(_module=module)
        if name == command:
            _configure(module, command_parser)
    return parser


def _configure(module: str, parser: argparse.ArgumentParser) -> None:
    try:
        importlib.import_module(module).configure(parser)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        parser.set_defaults(_missing=f"the '{parser.prog}' command is not available in this build ({exc.name})")


def utf8_output() -> None:
    """Write stdout and stderr as UTF-8 whatever the console's code page: redirected to a file on
    Windows they are cp1252, where "→" or a name in ``ensure_ascii=False`` JSON raises
    UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    utf8_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `station`, `station --demo`, `station --source X` open the GUI.
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["gui", *argv]
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    args.command_line = "station " + shlex.join(argv)  # recorded in model cards
    missing = getattr(args, "_missing", None)
    if missing:
        print(f"station: {missing}", file=sys.stderr)
        return 2
    from station.logs import setup_logging
    from station.storage import OutputFileError

    setup_logging(console=args.command != "gui")
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except OutputFileError as exc:  # any command's report file held open elsewhere: its words, not a traceback
        print(f"station {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `station … | head`: the reader has gone, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
