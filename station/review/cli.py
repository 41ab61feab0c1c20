"""``station batch DIR --recipe NAME --out report.csv``: headless batch-folder review.

Runs the same pipeline and store as the GUI's batch review: a folder reviewed here opens in the
GUI with its results (and a run interrupted here resumes, in either). Writes one CSV row per file
(errors included, with their reason) and, with ``--json``, a summary with ``n_images``,
``n_errors`` and ``images_per_s``. Exit status 0 when the report is written (files that could
not be read are rows, not failures), 1 when the recipe or the folder cannot be used.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from station.labels import plural

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of images to review")
    parser.add_argument("--recipe", required=True, help="recipe name (see the GUI's recipe list) or a recipe .json file")
    parser.add_argument("--out", type=Path, required=True, help="CSV report: one row per file")
    parser.add_argument("--json", type=Path, help="summary JSON (n_images, n_errors, images_per_s, counts)")
    parser.add_argument("--pdf", type=Path, help="PDF summary: counts, flagged items with thumbnails, errors")
    parser.add_argument("--recursive", action="store_true", help="include subfolders")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--no-attention", action="store_true",
                        help="skip attention maps (faster; the GUI's detail view then shows boxes only)")
    parser.add_argument("--backend", choices=["torch", "onnxruntime", "auto"], default="torch",
                        help="the networks' arithmetic: torch (default), onnxruntime (CPU only, 1.5-3.9x faster here; "
                             "the material Grad-CAM still comes from torch) or auto (onnxruntime on the CPU where "
                             "installed, as the capture window does)")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: 32 on CUDA, 4 on CPU)")
    parser.add_argument("--workers", type=int, help="decode threads (default: the cores, 2 to 8)")
    parser.add_argument("--reference", type=Path, help="defect-free template image, for recipes that compare against one")
    parser.add_argument("--max-megapixels", type=float,
                        help="refuse images whose header claims more pixels (default: the setting max_image_megapixels, 100)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_recipe(value: str):
    from station.inference import RecipeError, load_recipes, read_recipe

    candidate = Path(value)
    if candidate.suffix.lower() == ".json" and candidate.is_file():
        return read_recipe(candidate)
    recipes = load_recipes()
    if value not in recipes:
        known = ", ".join(repr(name) for name in recipes) or "none"
        raise RecipeError(f"no recipe named {value!r}; known: {known}")
    return recipes[value]


def max_pixels(megapixels: float | None) -> int | None:
    """The pixel cap: ``megapixels`` when given, else the settings' (0 or less: no cap)."""
    if megapixels is None:
        from station.config import load_settings

        megapixels = load_settings().max_image_megapixels
    return int(megapixels * 1_000_000) if megapixels and megapixels > 0 else None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from station.capture.images import ImageReadError, read_image
    from station.inference import Engine, EngineError, RecipeError
    from station.review.export import export_name, summarize, write_csv, write_json, write_pdf_summary
    from station.review.runner import BatchRunner, RunOptions
    from station.review.scan import FolderScanError, scan_folder
    from station.review.store import BatchStore, StoreError
    from station.review.thumbnails import ThumbnailCache
    from station.storage import OutputFileError, output_file

    try:
        recipe = resolve_recipe(args.recipe)
        scan = scan_folder(args.folder, recursive=args.recursive)
        reference = read_image(args.reference) if args.reference else None
    except (RecipeError, FolderScanError, ImageReadError) as exc:
        print(f"station batch: {exc}", file=sys.stderr)
        return 1
    try:
        engine = Engine(recipe, device="cpu" if args.backend == "onnxruntime" else args.device,
                        backend=args.backend)
    except (EngineError, ValueError, RuntimeError) as exc:
        print(f"station batch: cannot load recipe {recipe.name!r}: {exc}", file=sys.stderr)
        return 1
    thumbnails = ThumbnailCache()
    try:
        store = BatchStore.for_folder(scan.folder, recipe.name)
    except StoreError as exc:
        print(f"station batch: {exc}", file=sys.stderr)
        return 1
    with engine, store:
        options = RunOptions(
            want_attention=not args.no_attention, batch_size=args.batch_size, decode_workers=args.workers,
            reference=reference, max_pixels=max_pixels(args.max_megapixels),
        )
        runner = BatchRunner(engine, store, scan.folder, options=options, thumbnails=thumbnails)
        work = runner.plan(scan)
        print(
            f"{scan.folder}: {len(scan.files)} files, {len(work)} to read; recipe {recipe.name!r} on "
            f"{engine.device_description}, batches of {runner.batch_size}, {runner.inference_lanes} inference "
            f"lane(s), {plural(runner.decode_workers, 'decode thread')}",
            file=sys.stderr,
        )
        with tqdm(total=len(work), unit="img", desc="batch", disable=args.quiet, file=sys.stderr) as bar:
            def on_progress(progress, item_ids) -> None:
                bar.update(progress.done - bar.n)
                bar.set_postfix(errors=progress.errors, img_s=f"{progress.images_per_s:.1f}", refresh=False)

            try:
                result = runner.run(work, on_progress)
            except StoreError as exc:
                print(f"\nstation batch: {exc}; finished files are kept and a rerun resumes", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                runner.control.cancel()
                print("\nstation batch: interrupted; finished files are kept and a rerun resumes", file=sys.stderr)
                return 130
        summary = summarize(store, result)
        out = output_file(args.out, export_name(scan.folder, "csv"))
        try:
            write_csv(store, out)
            if args.json:
                write_json(summary, output_file(args.json, export_name(scan.folder, "json")))
            if args.pdf:
                write_pdf_summary(store, summary, output_file(args.pdf, export_name(scan.folder, "pdf")), thumbnails)
        except OutputFileError as exc:
            print(f"station batch: {exc}; the review is kept and a rerun writes the reports", file=sys.stderr)
            return 1
    print(
        f"{summary.n_images} files: {summary.n_inspected} inspected ({result.inspected} this run, "
        f"{result.images_per_s:.1f} img/s), {plural(summary.n_errors, 'error')}, {summary.n_uncertain} uncertain, "
        f"{summary.n_with_defects} with defects -> {out}",
        file=sys.stderr,
    )
    return 0
