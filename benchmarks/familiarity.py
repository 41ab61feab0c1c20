"""NO PART / UNFAMILIAR check of the bundled recipes: foreign frames against held-out genuine parts.

    PYTHONPATH=$PWD python benchmarks/familiarity.py --recipe demo --heldout /tmp/ic-heldout
    PYTHONPATH=$PWD python benchmarks/familiarity.py --recipe neu
    PYTHONPATH=$PWD python benchmarks/familiarity.py --recipe deeppcb

Everything runs through ``Engine.run_batch`` as the station does. Genuine frames: for the demo
recipe a synthetic package folder never used in fitting (``station synth --out DIR --count 300
--seed 900000``); for NEU and DeepPCB the ``test`` subset of the detector's own split (neither the
statistics nor the limits saw it). Foreign frames: ``station.training.foreign`` with seed 8,000,000
(the exploration that chose the layers looked at seed 7,000,000), 20 per generated family and 40 of
each other dataset. The score for AUROC is the largest model score (1.0 = limit), a frame whose
part localiser found nothing counting as +inf. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import dataclasses
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from station.capture.images import read_image
from station.inference import Engine, load_recipes
from station.inference.part_region import find_part
from station.training.foreign import ForeignSpec, foreign_frames, other_dataset_files
from station.training.splits import Split
from station.users.approvals import ModelApprovals

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RECIPES = {"demo": "IC package (demo)", "neu": "Steel surface (NEU)", "deeppcb": "Bare PCB (DeepPCB)"}


def genuine_frames(kind: str, heldout: Path | None) -> list[tuple[str, np.ndarray, np.ndarray | None, str | None]]:
    if kind == "demo":
        if heldout is None:
            raise SystemExit("--heldout DIR (station synth --out DIR --count 300 --seed 900000) is needed for demo")
        files = sorted(heldout.glob("*/*.png"))
        return [(p.name, read_image(p), None, p.parent.name) for p in files]
    model = "wbam-ffem-neu" if kind == "neu" else "wbam-ffem-deeppcb"
    split = Split.load(Path("models") / model / "split.json")
    root = DATA / ("neu-det" if kind == "neu" else "deeppcb")
    frames = []
    for key in split.subsets["test"]:
        path = root / key
        reference = None
        if kind == "deeppcb":
            reference = read_image(path.with_name(path.name.replace("_test.jpg", "_temp.jpg")))
        frames.append((key, read_image(path), reference, None))
    return frames


def foreign_spec(kind: str, size: tuple[int, int], heldout: Path | None, seed: int = 8_000_000) -> ForeignSpec:
    sources = {}
    if kind != "deeppcb":
        sources["deeppcb"] = other_dataset_files(DATA / "deeppcb", "deeppcb")
    if kind != "neu":
        sources["neu-det"] = other_dataset_files(DATA / "neu-det", "neu-det")
    if kind != "demo" and heldout is not None:
        sources["synthetic-packages"] = other_dataset_files(heldout, "folder")
    return ForeignSpec(size, per_family=20, seed=seed, other_sources=sources, per_source=40)


def scalar(result) -> float:
    check = result.familiarity
    if check is None:
        return 0.0
    if check.part_problem:
        return float("inf")
    return max(check.scores.values(), default=0.0)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(foreign score > genuine score), ties counted half."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def run(engine: Engine, frames, batch: int = 8, want_attention: bool = False) -> list:
    results = []
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        prepared = [engine.prepare(image, reference, request_id=i) for i, (_, image, reference, *_) in enumerate(chunk)]
        if want_attention:
            results += [engine.run_batch([p], want_attention=True)[0] for p in prepared]
        else:
            results += engine.run_batch(prepared)
    return results


def added_latency_ms(engine: Engine, frames, repeats: int = 3) -> dict[str, float]:
    """The check's own cost per frame: the part localiser, and the Mahalanobis scores on the
    features the forward pass caught (the hook itself only pools a map the network computed)."""
    localiser, scoring = [], []
    scorers = list(engine._familiarity.values())  # noqa: SLF001 — the bench times the check's parts
    for _ in range(repeats):
        for _, image, *_ in frames:
            start = time.perf_counter()
            find_part(engine.recipe.part_region, image)
            localiser.append(time.perf_counter() - start)
            for scorer in scorers:
                fake = [torch.zeros(1, s.precision.shape[0]) for s in scorer.statistics]
                start = time.perf_counter()
                scorer.scores(fake, 1)
                scoring.append(time.perf_counter() - start)
    return {"part_localiser_ms_median": 1e3 * float(np.median(localiser)),
            "feature_scores_ms_median": 1e3 * float(np.median(scoring)) * max(1, len(scorers)),
            "total_ms_median": 1e3 * (float(np.median(localiser)) + float(np.median(scoring)) * len(scorers))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    parser.add_argument("--heldout", type=Path, default=None, help="held-out synthetic packages (station synth folder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention-sample", type=int, default=100,
                        help="demo: genuine frames run with attention maps for the bulk-accept coverage")
    parser.add_argument("--foreign-seed", type=int, default=8_000_000,
                        help="seed of the foreign set (7,000,000 was looked at while choosing, 8,000,000 reported)")
    parser.add_argument("--detector", type=Path, default=None, help="another detector folder in the recipe's place")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = load_recipes()[RECIPES[args.recipe]]
    if args.detector is not None:
        recipe = dataclasses.replace(recipe, detector=str(args.detector.resolve()))
    engine = Engine(recipe, device="cpu", warm_up=True, approvals=ModelApprovals.developer())
    genuine = genuine_frames(args.recipe, args.heldout)
    size = genuine[0][1].shape[:2]
    foreign = [(f.name, f.image, f.image if recipe.use_reference else None, f.family)
               for f in foreign_frames(foreign_spec(args.recipe, size, args.heldout, args.foreign_seed))]
    genuine_results = run(engine, genuine)
    foreign_results = run(engine, foreign)
    genuine_scores = np.array([scalar(r) for r in genuine_results])
    foreign_scores = np.array([scalar(r) for r in foreign_results])
    flagged = np.array([r.unfamiliar for r in genuine_results])
    unflagged_foreign = [name for (name, *_), r in zip(foreign, foreign_results) if not r.unfamiliar]
    report = {
        "recipe": recipe.name,
        "detector": recipe.detector,
        "foreign_seed": args.foreign_seed,
        "genuine": len(genuine),
        "genuine_flagged": int(flagged.sum()),
        "genuine_flag_rate": float(flagged.mean()),
        "foreign": len(foreign),
        "foreign_by_family": dict(Counter(f[3] for f in foreign)),
        "foreign_unflagged": len(unflagged_foreign),
        "false_accept_rate": len(unflagged_foreign) / len(foreign),
        "foreign_unflagged_names": unflagged_foreign,
        "foreign_unflagged_by_family": dict(Counter(n.split("/")[0] for n in unflagged_foreign)),
        "auroc": auroc(foreign_scores, genuine_scores),
        "threads": args.threads,
        "added_latency": added_latency_ms(engine, genuine[:30]),
    }
    if args.recipe == "demo":
        truth = np.array([g[3] for g in genuine])
        called = np.array([r.material.material for r in genuine_results])
        report["material_accuracy_all"] = float(np.mean(truth == called))
        report["material_accuracy_unflagged"] = float(np.mean((truth == called)[~flagged]))
        sample = [g for g, f in zip(genuine, flagged) if not f][: args.attention_sample]
        with_maps = run(engine, sample, batch=1, want_attention=True)
        shares = np.array([r.attention_on_part for r in with_maps], dtype=float)
        confident = np.array([not r.needs_expert and not r.defects
                              and r.material.confidence >= recipe.bulk_accept_confidence for r in with_maps], dtype=bool)
        report["bulk"] = {
            "sample": len(sample),
            "attention_on_part_median": float(np.nanmedian(shares)),
            "confident_defect_free": int(confident.sum()),
            "bulk_acceptable": int((confident & (shares >= recipe.min_attention_on_part)).sum()),
            "rule": f"confidence >= {recipe.bulk_accept_confidence}, attention on part >= {recipe.min_attention_on_part}",
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
