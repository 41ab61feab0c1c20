"""Mean ± sample standard deviation of ``station evaluate --json`` reports, one per training seed.

    python benchmarks/seed_spread.py runs/bench/deeppcb*/test-4views.json --metrics deeppcb_map,deeppcb_fscore_at_card_threshold

``station bench repeat`` pools whole bench runs (their own single-view test figures); this pools
evaluations made afterwards, e.g. of recalibrated cards with test-time views. The reports must
cover the same images (same model split, same subset): that is checked.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="station evaluate --json files")
    parser.add_argument("--metrics", default=None, help="comma-separated metric names (default: all shared)")
    args = parser.parse_args(argv)
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in args.reports]
    scopes = {(r.get("data"), r.get("subset"), r.get("n_images"), r.get("test_time_views", 1)) for r in reports}
    if len(scopes) != 1:
        print(f"seed_spread: the reports score different images or views: {sorted(map(str, scopes))}", file=sys.stderr)
        return 1
    shared = set.intersection(*(set(r["metrics"]) for r in reports))
    names = args.metrics.split(",") if args.metrics else sorted(shared)
    missing = [name for name in names if name not in shared]
    if missing:
        print(f"seed_spread: not in every report: {', '.join(missing)}", file=sys.stderr)
        return 1
    data, subset, n_images, views = scopes.pop()
    print(f"{len(reports)} reports, {data} [{subset}], {n_images} images, {views} view(s)\n")
    print("| metric | mean ± std (%) | runs (%) |")
    print("|---|---|---|")
    for name in names:
        values = [100 * r["metrics"][name] for r in reports]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {name} | {statistics.mean(values):.2f} ± {spread:.2f} | {' / '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
