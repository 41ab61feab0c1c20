"""A small review folder (synthetic packages plus broken files) and a recipe whose thresholds split
it, for the batch review tests (``test_review*.py``, ``test_ui_batch*.py``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from station.synth import render_package

IMAGE_SIZE = (96, 128)  # (height, width): small, so a dozen files inspect in about a second
BROKEN = {
    "empty.jpg": "the file is empty (0 bytes)",
    "truncated.jpg": "truncated or corrupt image data",
    "text.png": "not an image",
    "notes.txt": "unsupported file type",
}


def write_review_folder(folder: Path, count: int = 8) -> list[str]:
    """``count`` synthetic package images (PNG and JPEG, half with defects) and the ``BROKEN``
    files; returns the image names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        sample = render_package(index, defects=index % 2 == 0, size=IMAGE_SIZE)
        name = f"part{index:02d}.{'png' if index % 3 else 'jpg'}"
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
        names.append(name)
    (folder / "empty.jpg").write_bytes(b"")
    ok, jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    (folder / "truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (folder / "text.png").write_text("this is a text file with an image's name\n")
    (folder / "notes.txt").write_text("operator notes\n")
    (folder / ".hidden.png").write_bytes(b"")  # hidden: never listed
    return names


def _calibrate_batch_norm(source: Path, target: Path, images: list[np.ndarray]) -> None:
    """Copy a random-init model with its BatchNorm statistics measured on ``images``.

    With the default statistics (mean 0, variance 1) a random deep network's activations fade
    to nearly nothing and every image gets the same answer; with measured statistics its
    random features respond to the image, so thresholds can split a folder.
    """
    import torch

    from station.ml.cards import load_model, prepare_input, save_model

    model, card = load_model(source)
    batch = torch.stack([prepare_input(image, card).tensor for image in images])
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batch
    model.train()
    with torch.no_grad():
        model(batch)
    save_model(target, model.eval(), card)


def _split_between(values: list[float], fraction: float) -> float:
    """A threshold halfway between two neighbouring values, about ``fraction`` of them below it."""
    ordered = sorted(values)
    upper = min(max(1, round(fraction * len(ordered))), len(ordered) - 1)
    return (ordered[upper - 1] + ordered[upper]) / 2


def split_recipe(recipe, folder: Path, image_names: list[str], models_dir: Path):
    """``recipe`` with its random-init models made content-sensitive (``_calibrate_batch_norm``)
    and its ``uncertain_below`` and ``score_threshold`` set between the models' outputs on the
    folder's images, so that the folder has uncertain items, items with defects, and confident
    defect-free ones."""
    from station.capture.images import read_image
    from station.inference import Engine, InspectionRequest

    images = [read_image(folder / name) for name in image_names]
    classifier_dir, detector_dir = models_dir / "calibrated-material", models_dir / "calibrated-defects"
    _calibrate_batch_norm(Path(recipe.classifier), classifier_dir, images)
    _calibrate_batch_norm(Path(recipe.detector), detector_dir, images)
    probe = dataclasses.replace(
        recipe, classifier=str(classifier_dir), detector=str(detector_dir), uncertain_below=0.0, score_threshold=0.0
    )
    confidences, top_scores = [], []
    with Engine(probe, device="cpu", warm_up=False) as engine:
        for index, image in enumerate(images):
            result = engine.run(InspectionRequest(index, image, want_attention=False))
            confidences.append(result.material.confidence)
            top_scores.append(max((d.score for d in result.defects), default=0.0))
    uncertain_below = _split_between(confidences, 0.35)
    score_threshold = _split_between(top_scores, 0.6)
    uncertain = [c < uncertain_below for c in confidences]
    defects = [s >= score_threshold for s in top_scores]
    clean_and_sure = [not u and not d for u, d in zip(uncertain, defects)]
    assert any(uncertain) and any(defects) and any(clean_and_sure), (confidences, top_scores)
    # random-init models: bulk accept takes what is not uncertain, wherever its attention lies
    return dataclasses.replace(probe, uncertain_below=uncertain_below, score_threshold=score_threshold,
                               bulk_accept_confidence=uncertain_below, min_attention_on_part=0.0)


def write_recipe_file(recipe, path: Path) -> Path:
    path.write_text(json.dumps(recipe.to_dict(), indent=2))
    return path


def make_review_setup(root: Path, recipe_name: str = "Batch test recipe"):
    """(folder, image names, recipe): the review folder and its split recipe under ``root``."""
    from helpers_models import make_tiny_recipe

    folder = root / "incoming"
    names = write_review_folder(folder)
    recipe = split_recipe(make_tiny_recipe(root / "models", name=recipe_name), folder, names, root / "models")
    return folder, names, recipe


def copy_folder(source: Path, target: Path, names: list[str] | None = None) -> Path:
    """A copy of the review folder (or of ``names`` in it) that a test may change."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if names is None or path.name in names:
            (target / path.name).write_bytes(path.read_bytes())
    return target
