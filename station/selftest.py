"""``station selftest``: a headless end-to-end check of every stage, for installs and the
packaged app. Prints one line per stage and a one-line summary; exit 0 when all pass."""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from station import __version__


@dataclass
class StageResult:
    name: str
    ok: bool
    summary: str
    ms: float


@dataclass
class SelftestContext:
    device: str = "auto"
    recipe: str = "IC package (demo)"
    frame: object = None
    result: object = None
    notes: dict = field(default_factory=dict)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--recipe", default="IC package (demo)", help="recipe whose models are checked")
    parser.add_argument("--json", action="store_true", help="print the stage results as JSON")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of a failing stage")


def _stage_synth(ctx: SelftestContext) -> str:
    from station.synth import render_package

    sample = render_package(seed=7, defects=True)
    assert sample.image.dtype.name == "uint8" and sample.image.ndim == 3
    return f"{sample.material} {sample.package_type}, {len(sample.labels)} defects"


def _stage_capture(ctx: SelftestContext) -> str:
    from station.capture.sources import open_source

    with open_source("demo") as source:
        frames = [source.read() for _ in range(3)]
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3, f"frame ids not increasing: {ids}"
    ctx.frame = frames[-1]
    height, width = frames[-1].image.shape[:2]
    return f"3 frames {width}x{height} from the simulated microscope"


def _stage_inference(ctx: SelftestContext) -> str:
    from station.inference import Engine, InspectionRequest, load_recipes
    from station.ml.cards import CARD_FILE, file_sha256
    from station.users.approvals import ModelApprovals, ModelHashes, station_approvals

    recipes = load_recipes()
    if ctx.recipe not in recipes:
        raise RuntimeError(f"recipe {ctx.recipe!r} not found; have {sorted(recipes)}")
    recipe = recipes[ctx.recipe]
    # the stage checks that the models work; whether an admin approved them is reported, not required
    approvals = station_approvals()
    engine = Engine(recipe, device=ctx.device,
                    approvals=ModelApprovals(approvals.approvals, allow_unapproved=True, source="selftest"))
    unapproved = [m.card.name for m in (engine.classifier, engine.detector)
                  if m is not None and approvals.find(ModelHashes(m.card.name, m.card.weights_sha256,
                                                                  file_sha256(m.directory / CARD_FILE))) is None]
    # a template recipe is exercised with the frame as its own template (nothing differs: no defects expected)
    reference = ctx.frame.image if recipe.use_reference else None
    try:
        result = engine.run(InspectionRequest(1, ctx.frame.image, reference, want_attention=True))
    finally:
        engine.close()
    ctx.result = result
    height, width = ctx.frame.image.shape[:2]
    maps = [m for m in (result.attention.material, result.attention.defects) if m is not None] if result.attention else []
    for attention in maps:
        assert attention.shape == (height, width), f"attention map {attention.shape} != frame {(height, width)}"
        assert float(attention.min()) >= 0.0 and float(attention.max()) <= 1.0
    call = result.material
    material = f"{call.material} {call.confidence:.0%}{' UNCERTAIN' if call.uncertain else ''}" if call else "no classifier"
    approval = f"; not approved for use yet: {', '.join(unapproved)} (station models approve DIR)" if unapproved else ""
    return (f"{material}, {len(result.defects)} defects, {len(maps)} attention maps, "
            f"{result.timings_ms['total']:.0f} ms on {result.device}{approval}")


def _stage_render(ctx: SelftestContext) -> str:
    from station.render import compose_overlay

    overlay = compose_overlay(ctx.frame.image, ctx.result)
    assert overlay.shape == ctx.frame.image.shape
    return "overlay composed"


def _stage_audit(ctx: SelftestContext) -> str:
    from station.audit import AuditLog, write_selftest_entry

    with AuditLog() as audit_log:
        entry = write_selftest_entry(audit_log)
        verdict = audit_log.verify()
    if not verdict.ok:
        raise RuntimeError(f"audit chain broken at entry {verdict.first_bad_id}: {verdict.reason}")
    return f"entry #{entry.id} written, chain of {verdict.n_entries} verified ({audit_log.describe_location()})"


STAGES: list[tuple[str, Callable[[SelftestContext], str]]] = [
    ("synth", _stage_synth),
    ("capture", _stage_capture),
    ("inference", _stage_inference),
    ("render", _stage_render),
    ("audit", _stage_audit),
]


def run_selftest(device: str = "auto", recipe: str = "IC package (demo)", verbose: bool = False) -> list[StageResult]:
    ctx = SelftestContext(device=device, recipe=recipe)
    results: list[StageResult] = []
    for name, stage in STAGES:
        if name == "render" and ctx.result is None:
            results.append(StageResult(name, False, "skipped: no inference result", 0.0))
            continue
        start = time.perf_counter()
        try:
            summary, ok = stage(ctx), True
        except Exception as exc:  # noqa: BLE001 — every failure is reported, the next stage still runs
            summary, ok = f"{type(exc).__name__}: {exc}", False
            if verbose:
                traceback.print_exc()
        results.append(StageResult(name, ok, summary, (time.perf_counter() - start) * 1000))
    return results


def run(args: argparse.Namespace) -> int:
    results = run_selftest(args.device, args.recipe, args.verbose)
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "version": __version__, "stages": [r.__dict__ for r in results]}, indent=2))
    else:
        for r in results:
            print(f"  {'ok  ' if r.ok else 'FAIL'} {r.name:<10} {r.ms:7.0f} ms  {r.summary}")
        status = "OK" if not failed else f"FAILED ({', '.join(r.name for r in failed)})"
        print(f"station {__version__} selftest {status}: {sum(r.ok for r in results)}/{len(results)} stages passed")
    return 0 if not failed else 1
