"""``station selftest``: a headless end-to-end check of every stage, for installs and the
packaged app. Prints one line per stage and a one-line summary; exit 0 when all pass.

After the stages come the parts a station may be configured to use (``OPTIONAL_PARTS``): each
is checked when it applies and otherwise reported as skipped with the reason (``--json``:
``checked`` and ``skipped``). An import that fails names its module, so a bundle that lacks a
hidden import says which.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    audit_url: str = ""  # --audit-url; empty: the settings' (or STATION_AUDIT_URL)
    onnxruntime: bool = False  # --onnxruntime: check it even where the settings do not use it


class Skipped(Exception):
    """An optional part that does not apply here; the message says why."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--recipe", default="IC package (demo)", help="recipe whose models are checked")
    parser.add_argument("--json", action="store_true", help="print the stage results as JSON")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of a failing stage")
    parser.add_argument("--audit-url", default="", metavar="URL",
                        help="check the lab's PostgreSQL log at URL (read only) instead of the configured one")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="check ONNX Runtime even where the settings do not use it")


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


def _import_failure(exc: ImportError) -> str:
    missing = f"missing module {exc.name!r}: " if exc.name else ""
    return f"{missing}{type(exc).__name__}: {exc}"


def _part_postgresql(ctx: SelftestContext) -> str:
    from station.audit.backend import configured_location, is_url

    url = ctx.audit_url or configured_location()
    if not is_url(url):
        raise Skipped("no audit_url in the settings and no --audit-url: the station keeps its local log")
    import psycopg
    from psycopg import pq

    from station.audit.pg import PostgresBackend, redact

    backend = PostgresBackend(str(url), readonly=True)
    try:
        problems = backend.schema_problems()
        with backend.transaction() as tx:
            (server,) = tx.execute("SHOW server_version")[0]
            (entries,) = tx.execute("SELECT count(*) FROM entries")[0]
    finally:
        backend.close()
    if problems:
        raise RuntimeError(f"the audit schema on {redact(str(url))} differs: {'; '.join(problems)}")
    if getattr(sys, "frozen", False) and pq.__impl__ != "binary":
        # psycopg fell back to the system's libpq: the bundle was built without its own
        raise RuntimeError(f"missing module 'psycopg_binary': psycopg runs its {pq.__impl__} implementation "
                           "on this PC's libpq instead of the bundled one")
    return (f"schema checked read-only on {redact(str(url))} (PostgreSQL {server}, {entries} entries), "
            f"psycopg {psycopg.__version__} {pq.__impl__} implementation")


def _part_onnxruntime(ctx: SelftestContext) -> str:
    from station.config import load_settings

    if not (ctx.onnxruntime or load_settings().batch_onnxruntime):
        raise Skipped("not used: batch_onnxruntime is off in the settings (--onnxruntime checks it anyway)")
    import onnxruntime

    from station.inference import Engine, InspectionRequest, load_recipes
    from station.users.approvals import ModelApprovals

    recipe = load_recipes()[ctx.recipe]
    engine = Engine(recipe, device="cpu", backend="onnxruntime", warm_up=False,
                    approvals=ModelApprovals((), allow_unapproved=True, source="selftest"))
    try:
        result = engine.run(InspectionRequest(1, ctx.frame.image, ctx.frame.image if recipe.use_reference else None))
        models = [m.card.name for m in (engine.classifier, engine.detector) if m is not None]
    finally:
        engine.close()
    call = result.material
    material = f", {call.material} {call.confidence:.0%}" if call else ""
    return (f"onnxruntime {onnxruntime.__version__}: sessions built for {', '.join(models)}"
            f"{material}, {len(result.defects)} defects")


def _part_genicam(ctx: SelftestContext) -> str:
    try:
        import gi
    except ImportError as exc:
        raise Skipped(f"PyGObject is not installed ({exc}): no GenICam cameras through Aravis") from exc
    try:
        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as exc:
        raise Skipped(f"PyGObject {gi.__version__} is here but not Aravis 0.8 ({exc}): no GenICam cameras") from exc
    Aravis.update_device_list()  # GigE Vision discovery and USB3 Vision enumeration: about a second
    return f"PyGObject {gi.__version__}, Aravis {Aravis._version}: {Aravis.get_n_devices()} cameras found"


def _part_users(ctx: SelftestContext) -> str:
    import argon2  # noqa: F401 — a missing argon2 is named here, not as a failed hash

    from station.audit import AuditLog
    from station.users import UserDirectory
    from station.users.passwords import hash_password, password_matches

    probe = hash_password("selftest-not-a-password")  # in memory: argon2 and its compiled part
    assert password_matches(probe, "selftest-not-a-password") and not password_matches(probe, "other")
    with AuditLog(readonly=True) as audit_log:
        directory = UserDirectory(audit_log)
        users = directory.users()
        unreadable = [u.user_id for u in users.values()
                      if not u.disabled and directory.credentials.get(u.user_id, u.credential_sha256) is None]
        location = audit_log.describe_location()
    if unreadable:
        raise RuntimeError(f"no stored password hash for {', '.join(unreadable)} in {location}")
    return f"{len(users)} users read from {location}, their password hashes found; argon2 hashes and verifies"


def _part_signing_key(ctx: SelftestContext) -> str:
    import cryptography

    from station.audit.keys import KEY_FILE, check_signature, keys_dir, load_station_key

    path = keys_dir() / KEY_FILE
    if not path.is_file():  # never made here: the audit stage makes it with its first entry
        raise RuntimeError(f"no signing key at {path}")
    key = load_station_key()
    if not check_signature(key.public_key_hex, 0, "selftest", key.sign_head(0, "selftest")):
        raise RuntimeError(f"the signing key {path} does not verify its own signature")
    return f"Ed25519 key {key.fingerprint} loaded from {path}, signs and verifies; cryptography {cryptography.__version__}"


def _part_pdf_export(ctx: SelftestContext) -> str:
    from station.reports.pdf import report_families, write_pdf

    marker = "Station self-test report"
    with tempfile.TemporaryDirectory(prefix="station-selftest-") as folder:
        path = write_pdf(f"<h1>{marker}</h1><p>µm, Ø, ü: one page.</p>", Path(folder) / "selftest.pdf", title=marker)
        data = path.read_bytes()
    if not data.startswith(b"%PDF") or len(data) < 2000:
        raise RuntimeError(f"the PDF is {len(data)} bytes and starts {data[:8]!r}")
    families = report_families()
    if not families or b"/FontFile" not in data:
        raise RuntimeError(f"the PDF embeds no font (report fonts: {families}): its text would not show")
    return f"one page, {len(data) / 1024:.0f} KB, text set in {families[0]}"


STAGES: list[tuple[str, Callable[[SelftestContext], str]]] = [
    ("synth", _stage_synth),
    ("capture", _stage_capture),
    ("inference", _stage_inference),
    ("render", _stage_render),
    ("audit", _stage_audit),
]

# after the stages: the users' check reads the log and key the audit stage wrote, ONNX Runtime
# inspects the capture stage's frame
OPTIONAL_PARTS: list[tuple[str, Callable[[SelftestContext], str]]] = [
    ("postgresql", _part_postgresql),
    ("onnxruntime", _part_onnxruntime),
    ("genicam", _part_genicam),
    ("users", _part_users),
    ("signing-key", _part_signing_key),
    ("pdf-export", _part_pdf_export),
]


@dataclass
class PartResult:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class SkippedPart:
    name: str
    reason: str


def check_parts(ctx: SelftestContext, verbose: bool = False) -> tuple[list[PartResult], list[SkippedPart]]:
    checked: list[PartResult] = []
    skipped: list[SkippedPart] = []
    for name, part in OPTIONAL_PARTS:
        if name == "onnxruntime" and ctx.frame is None:
            checked.append(PartResult(name, False, "not checked: the capture stage gave no frame", 0.0))
            continue
        start = time.perf_counter()
        try:
            detail, ok = part(ctx), True
        except Skipped as reason:
            skipped.append(SkippedPart(name, str(reason)))
            continue
        except ImportError as exc:
            detail, ok = _import_failure(exc), False
        except Exception as exc:  # noqa: BLE001 — every failure is reported, the next part still runs
            detail, ok = f"{type(exc).__name__}: {exc}", False
        if not ok and verbose:
            traceback.print_exc()
        checked.append(PartResult(name, ok, detail, time.perf_counter() - start))
    return checked, skipped


def run_selftest(device: str = "auto", recipe: str = "IC package (demo)", verbose: bool = False,
                 ctx: SelftestContext | None = None) -> list[StageResult]:
    ctx = ctx if ctx is not None else SelftestContext(device=device, recipe=recipe)
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
    ctx = SelftestContext(device=args.device, recipe=args.recipe, audit_url=args.audit_url.strip(),
                          onnxruntime=args.onnxruntime)
    results = run_selftest(args.device, args.recipe, args.verbose, ctx=ctx)
    parts, skipped = check_parts(ctx, args.verbose)
    checked = [PartResult(r.name, r.ok, r.summary, r.ms / 1000) for r in results] + parts
    failed = [c for c in checked if not c.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "version": __version__, "stages": [r.__dict__ for r in results],
                          "checked": [c.__dict__ for c in checked], "skipped": [s.__dict__ for s in skipped]},
                         indent=2, ensure_ascii=False))
    else:
        for c in checked:
            print(f"  {'ok  ' if c.ok else 'FAIL'} {c.name:<11} {c.seconds * 1000:7.0f} ms  {c.detail}")
        for s in skipped:
            print(f"  skip {s.name:<11}            {s.reason}")
        status = "OK" if not failed else f"FAILED ({', '.join(c.name for c in failed)})"
        print(f"station {__version__} selftest {status}: {len(checked) - len(failed)}/{len(checked)} checks passed"
              f", {len(skipped)} optional parts skipped")
    return 0 if not failed else 1
