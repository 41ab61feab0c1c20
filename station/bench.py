"""``station bench``: latency of the inference path, and the papers' tables.

``latency`` runs the inference engine only; ``table2``, ``ablation`` and ``detectors`` train
models and live in the training package, imported only when asked for; ``repeat`` pools runs
of those made with different seeds.
"""

from __future__ import annotations

import argparse
import importlib

# kind -> module providing configure(parser) and run(args)
BENCHES = {
    "latency": "station.inference_bench",
    "table2": "station.training.bench_tables",
    "ablation": "station.training.bench_tables",
    "detectors": "station.training.bench_tables",
    "repeat": "station.training.bench_repeat",
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, module in BENCHES.items():
        bench_parser = sub.add_parser(name)
        bench_parser.set_defaults(_bench_module=module)
        importlib.import_module(module).configure(bench_parser, name)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._bench_module).run(args) or 0)
