"""``station models``: the registered network configs and the bundled models.

``station models list`` names every config of ``station.ml.registry`` and every folder of
``station.paths.models_dir()`` holding a ``card.json`` (with the card's ``name``, ``task`` and
``architecture`` when it reads).
``station models info NAME [--json] [--size H W] [--runs N] [--threads N]`` builds config
NAME with fresh weights and reports its parameters, multiply-adds and batch-1 CPU latency.
``station models limitations MODEL_DIR [--add TEXT ...] [--clear]`` prints, adds to or clears
the card's known limitations (card.json and MODEL_CARD.md are rewritten; the weights are not
touched). The station shows them to the operator with the model's metrics.
``station models approve MODEL_DIR ... --admin ID`` records an admin's approval of each model's
weights and card hashes on the audit log (``station.users.approvals``); a recipe loads only
approved models. A card rewritten afterwards (limitations, calibration) needs approving again.
``station models promote MODEL_DIR --recipe NAME --admin ID`` switches a recipe to an approved
model, signed, with a ``MODEL_CHANGE`` entry (``station.inference.promotion``).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from station import paths
from station.ml import registry
from station.ml.cards import CARD_FILE, ModelLoadError, load_card, save_card
from station.ml.profile import count_gmacs, count_params, measure_latency_ms


@dataclass(frozen=True)
class ModelInfo:
    name: str
    architecture: str
    params: int
    gmacs: float  # multiply-adds ×1e-9 at input_size, batch 1 (GFLOPs = 2 × GMACs)
    input_size: tuple[int, int, int]  # (C, H, W)
    latency_ms: float  # median, batch 1, CPU, `threads` threads
    threads: int


@dataclass(frozen=True)
class BundledModel:
    folder: str
    # from card.json; None when the field is missing or the card unreadable
    name: str | None
    task: str | None
    architecture: str | None  # the registered config it was built from


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="registered configs and bundled models")
    info = sub.add_parser("info", help="parameters, GMACs (multiply-adds) and CPU latency of a config")
    info.add_argument("name", help="a registered config, e.g. cti-tiny (see `station models list`)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input height and width")
    info.add_argument("--runs", type=int, default=20, help="timed forward passes (median reported)")
    info.add_argument("--warmup", type=int, default=3, help="untimed forward passes first")
    info.add_argument("--threads", type=int, help="torch CPU threads (default: torch's current setting)")
    notes = sub.add_parser("limitations", help="print, add to or clear a model card's known limitations")
    notes.add_argument("model", type=Path, help="a model folder (card.json + weights.safetensors)")
    notes.add_argument("--add", action="append", default=[], metavar="TEXT",
                       help="one limitation, in a sentence or two; repeat for several")
    notes.add_argument("--clear", action="store_true", help="remove the card's limitations first")
    try:
        from station.training.compare import configure_compare
    except ModuleNotFoundError:  # the bench-PC build leaves the training package out
        configure_compare = None
    if configure_compare is not None:
        configure_compare(sub.add_parser("compare", help="two models on the same images: is the difference real? "
                                         "(McNemar for classifiers, paired bootstrap of mAP for detectors)"))
    from station.inference.promotion import configure_promote

    configure_promote(sub.add_parser("promote", help="switch a recipe to an approved model (admin, signed); on the log"))
    approve = sub.add_parser("approve", help="approve models for use (admin, with their password); recorded on the log")
    approve.add_argument("models", nargs="+", type=Path, metavar="MODEL_DIR", help="model folders to approve")
    approve.add_argument("--admin", required=True, metavar="ADMIN_ID", help="the approving admin (asked for their password)")
    approve.add_argument("--db", type=Path, help="audit database (default: the station's own log)")


def run(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        return _list()
    if args.models_command == "limitations":
        return _limitations(args)
    if args.models_command == "approve":
        return _approve(args)
    if args.models_command == "promote":
        from station.inference.promotion import run_promote

        return run_promote(args)
    if args.models_command == "compare":
        from station.training.compare import run_compare

        return run_compare(args)
    return _info(args)


def edit_limitations(model_dir: Path, add: list[str], clear: bool = False) -> list[str]:
    """The card's limitations after clearing (``clear``) and appending ``add``; the card is
    rewritten only when that changes them."""
    card = load_card(model_dir)
    kept = [] if clear else list(card.limitations)
    new = kept + [text.strip() for text in add if text.strip() and text.strip() not in kept]
    if new != card.limitations:
        card.limitations = new
        save_card(model_dir, card)
    return new


def _limitations(args: argparse.Namespace) -> int:
    try:
        limitations = edit_limitations(args.model, args.add, clear=args.clear)
    except ModelLoadError as exc:
        print(f"station models limitations: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"station models limitations: cannot write the card in {args.model} ({exc.strerror or exc})",
              file=sys.stderr)
        return 1
    if not limitations:
        print(f"{args.model}: no known limitations recorded")
    for text in limitations:
        print(textwrap.fill(text, width=100, initial_indent="- ", subsequent_indent="  "))
    return 0


def _approve(args: argparse.Namespace) -> int:
    from station.users.cli import approve_models

    return approve_models(args)


def model_info(name: str, size: tuple[int, int] | None = None, runs: int = 20, warmup: int = 3) -> ModelInfo:
    """Build config ``name`` on the CPU and measure it at ``size`` (default: its own input size)."""
    architecture = registry.architecture_of(name)
    model = registry.build_model(name).eval()
    channels, *default_hw = model.default_input_size
    height, width = size if size is not None else default_hw
    input_size = (int(channels), int(height), int(width))
    return ModelInfo(
        name=name,
        architecture=architecture,
        params=count_params(model),
        gmacs=count_gmacs(model, input_size),
        input_size=input_size,
        latency_ms=measure_latency_ms(model, input_size, warmup=warmup, runs=runs),
        threads=torch.get_num_threads(),
    )


def bundled_models(folder: Path | None = None) -> list[BundledModel]:
    """Sub-folders of the models folder that hold a card (read leniently: any JSON goes)."""
    folder = paths.models_dir() if folder is None else folder
    if not folder.is_dir():
        return []
    found = []
    for model_dir in sorted(path for path in folder.iterdir() if (path / CARD_FILE).is_file()):
        try:
            card = json.loads((model_dir / CARD_FILE).read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            card = None
        if not isinstance(card, dict):
            card = {}
        fields = (_text_or_none(card.get(key)) for key in ("name", "task", "architecture"))
        found.append(BundledModel(model_dir.name, *fields))
    return found


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _list() -> int:
    configs = registry.list_configs()
    print("registered configs:")
    for architecture in sorted(set(configs.values())):
        names = ", ".join(name for name, arch in configs.items() if arch == architecture)
        indent = f"  {architecture}: "
        print(textwrap.fill(names, width=100, initial_indent=indent, subsequent_indent="    ", break_on_hyphens=False))
    from station.users.cli import approval_states

    models = bundled_models()
    print(f"bundled models ({paths.models_dir()}):")
    if not models:
        print("  (none)")
    states = approval_states([paths.models_dir() / model.folder for model in models])
    for model, state in zip(models, states):
        described = (("name", model.name), ("task", model.task), ("config", model.architecture))
        fields = [f"{key} {value}" for key, value in described if value]
        print(f"  {model.folder}  ({', '.join(fields)})" if fields else f"  {model.folder}")
        print(f"    {state}")
    return 0


def _info(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print(f"station models info: --runs must be at least 1, got {args.runs}", file=sys.stderr)
        return 2
    if args.size is not None and min(args.size) < 1:
        print(f"station models info: --size must be positive, got {args.size}", file=sys.stderr)
        return 2
    try:
        registry.architecture_of(args.name)
    except KeyError as exc:
        print(f"station models info: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = model_info(args.name, tuple(args.size) if args.size else None, runs=args.runs, warmup=args.warmup)
    if args.json:
        print(json.dumps(asdict(info)))
        return 0
    channels, height, width = info.input_size
    print(f"{info.name} ({info.architecture})")
    print(f"  params      {info.params:,} ({info.params / 1e6:.2f} M)")
    print(f"  GMACs       {info.gmacs:.3f} (multiply-adds, batch 1, {channels}x{height}x{width}; "
          f"{2 * info.gmacs:.3f} GFLOPs)")
    print(f"  latency     {info.latency_ms:.1f} ms (CPU, batch 1, {info.threads} threads, median of {args.runs})")
    return 0
