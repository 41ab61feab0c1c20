"""``station bench repeat RUN RUN RUN``: mean ± std of bench tables run with different seeds.

Each RUN is the ``--out`` folder of a ``station bench table2|detectors|ablation`` run. The runs
must score the same data on the same split (``--split FIRST/split.json --seed N`` does that), so
that the spread measures the training seed alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
DETECTION_METRICS = ("map50", "map50_95", "deeppcb_map", "deeppcb_fscore_at_card_threshold")
LABELS = {"accuracy": "Accuracy (%)", "macro_f1": "Macro F1 (%)", "map50": "mAP@.5", "map50_95": "mAP@.5:.95",
          "deeppcb_map": "DeepPCB mAP", "deeppcb_fscore_at_card_threshold": "DeepPCB F @card thr."}


class RepeatError(ValueError):
    """The runs cannot be pooled; names the run and the reason."""


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="bench output folders (one per seed)")
    parser.add_argument("--out", type=Path, default=None, help="write table.md and results.json here")


def load_runs(folders: list[Path]) -> list[dict]:
    runs = []
    for folder in folders:
        path = folder / "results.json"
        try:
            run = json.loads(path.read_text(encoding="utf-8-sig"))
            split = (folder / "split.json").read_text(encoding="utf-8-sig")
        except (OSError, ValueError) as exc:
            raise RepeatError(f"{folder}: not a finished bench run ({exc})") from exc
        run["_folder"], run["_split"] = str(folder), json.loads(split).get("subsets")
        runs.append(run)
    first = runs[0]
    for run in runs[1:]:
        for key in ("bench", "data", "format"):
            if run[key] != first[key]:
                raise RepeatError(f"{run['_folder']}: {key} {run[key]!r} differs from {first['_folder']}'s "
                                  f"{first[key]!r}")
        if run["_split"] != first["_split"]:
            raise RepeatError(f"{run['_folder']}: another split than {first['_folder']}'s "
                              f"(pass --split {first['_folder']}/split.json)")
    return runs


def summarise(runs: list[dict]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """model -> metric -> (mean, sample std, runs); only models present in every run."""
    per_run = [{_config(row["model"]): row for row in run["rows"]} for run in runs]
    summary: dict[str, dict[str, tuple[float, float, int]]] = {}
    for row in runs[0]["rows"]:
        config = _config(row["model"])
        if not all(config in rows for rows in per_run):
            continue
        metrics = CLASSIFICATION_METRICS if runs[0]["bench"] != "detectors" else DETECTION_METRICS
        summary[row["model"]] = {}
        for metric in metrics:
            values = [rows[config]["metrics"][metric] for rows in per_run if metric in rows[config]["metrics"]]
            if len(values) == len(per_run):
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                summary[row["model"]][metric] = (statistics.fmean(values), spread, len(values))
    return summary


def _config(model: str) -> str:
    """'cti-tiny (cti-neu)' -> 'cti-tiny': a run with --bundle pools with runs without it."""
    return model.split(" (", 1)[0]


def format_summary(runs: list[dict], summary: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    seeds = ", ".join(str(run["seed"]) for run in runs)
    metrics = [m for m in LABELS if any(m in values for values in summary.values())]
    lines = [f"station bench repeat: {runs[0]['bench']} on {runs[0]['data']} ({runs[0]['format']}), seeds {seeds}; "
             "mean ± sample std, in %", "",
             "| Method | " + " | ".join(LABELS[m] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, values in summary.items():
        cells = [f"{100 * values[m][0]:.2f} ± {100 * values[m][1]:.2f}" if m in values else "-" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        runs = load_runs(args.runs)
    except RepeatError as exc:
        print(f"station bench repeat: {exc}", file=sys.stderr)
        return 1
    summary = summarise(runs)
    table = format_summary(runs, summary)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(table + "\n", encoding="utf-8")
        results = {"runs": [run["_folder"] for run in runs], "seeds": [run["seed"] for run in runs],
                   "summary": {name: {metric: {"mean": mean, "std": std, "n": n}
                                      for metric, (mean, std, n) in values.items()}
                               for name, values in summary.items()}}
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table)
    return 0
