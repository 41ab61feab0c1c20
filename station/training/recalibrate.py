"""Re-fit a trained model's card on its validation split (``station calibrate``'s engine)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from station.devices import resolve_device
from station.ml.cards import ModelCard, load_model, save_card
from station.training.calibration import calibrate_card
from station.training.datasets import read_dataset
from station.training.evaluate import card_split_file, select_subset
from station.training.loaders import ClassificationData, DetectionData, make_loader
from station.training.splits import Split, SplitError

log = logging.getLogger(__name__)


def recalibrate(model_dir: str | Path, data: str | Path, fmt: str | None = None, *, views: int | None = None,
                device: str = "auto", batch: int = 16, workers: int = 0, command_line: str = "",
                progress: bool = True) -> ModelCard:
    """Re-fit ``model_dir``'s card on the validation images of its own split file and write it
    (card.json and MODEL_CARD.md; the weights are not touched). ``views`` sets a detector's
    test-time views first. Returns the new card."""
    model_dir = Path(model_dir)
    torch_device = resolve_device(device)
    model, card = load_model(model_dir, torch_device)
    if views is not None:
        card = dataclasses.replace(card, test_time_views=views)  # validates: detectors only
    split_path = card_split_file(model_dir, card)
    if split_path is None or not split_path.is_file():
        raise SplitError(f"{model_dir} has no split file; calibration needs the validation images it was "
                         "trained against")
    index = read_dataset(data, fmt or card.data.format, classes=card.classes)
    chosen, _ = select_subset(index, Split.load(split_path), "val")
    log.info("%s", chosen.summary(f"calibrating {card.name} on {chosen.root} [val]"))
    kind = ClassificationData if card.task == "classification" else DetectionData
    loader = make_loader(kind(chosen.samples, card), batch, shuffle=False, workers=workers)  # type: ignore[arg-type]
    card = calibrate_card(model, card, loader, torch_device, deeppcb=card.data.format == "deeppcb",
                          seed=card.training.seed or 0, progress=progress)
    card = dataclasses.replace(card, training=dataclasses.replace(card.training, recalibration=command_line))
    save_card(model_dir, card)
    return card
