"""torch Datasets over a :class:`~station.training.datasets.DatasetIndex`.

Training samples are augmented (``station.training.transforms``) and normalised with the card;
evaluation samples go through :func:`station.ml.cards.prepare_input`, exactly as the station's
inference does, and detection targets stay in original-image pixels (predictions are mapped
back through the letterbox before they are scored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from station.ml.cards import INPUT_MODES, ModelCard, normalise, prepare_input, stack_input
from station.ml.letterbox import LetterboxInfo, boxes_to_letterbox, letterbox
from station.training.datasets import ClassificationSample, DetectionSample, load_image
from station.training.transforms import AugmentConfig, BoxedImage, copy_paste, mixup, mosaic


def channel_parts(input_mode: str) -> list[int]:
    """Channel counts of the image and (when used) the reference, in stacking order."""
    return [count for count in INPUT_MODES[input_mode] if count]


def _load_pair(sample: ClassificationSample | DetectionSample, card: ModelCard) -> tuple[np.ndarray, np.ndarray | None]:
    image = load_image(sample.image_path)
    reference_path = getattr(sample, "reference_path", None)
    reference = load_image(reference_path) if card.uses_reference and reference_path is not None else None
    return image, reference


def _stacked(sample: ClassificationSample | DetectionSample, card: ModelCard) -> np.ndarray:
    return stack_input(*_load_pair(sample, card), card.input_mode)


def _seeded(item, index: int | tuple[int, int]):
    """``item(index)``; an ``(index, seed)`` pair from :class:`EpochSampler` draws its augmentation from
    ``seed`` alone, leaving the process's random state as it was."""
    if isinstance(index, int):
        return item(index)
    position, seed = index
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return item(position)


class EpochSampler(Sampler):
    """A shuffled order and one augmentation seed per sample, both drawn from (seed, epoch) alone.

    A run resumed at epoch k then sees the batches and the augmentations of an uninterrupted run,
    whatever its number of loading processes (persistent workers would otherwise carry their random
    state from epoch to epoch, and a resumed run would start them afresh).
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        seeds = torch.randint(2**62, (self.size,), generator=generator).tolist()
        return iter(zip(order, seeds))


class ClassificationData(Dataset):
    """(input [C, H, W] float32, label); ``augment`` makes it a training set."""

    def __init__(
        self,
        samples: Sequence[ClassificationSample],
        card: ModelCard,
        augment: Callable[[tv_tensors.Image], torch.Tensor] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.card = card
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        return _seeded(self._item, index)

    def _item(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        if self.augment is None:
            image, reference = _load_pair(sample, self.card)
            return prepare_input(image, self.card, reference).tensor, sample.label
        # contiguous [C, H, W]: the v2 kernels are several times slower on a permuted view
        channels = torch.from_numpy(_stacked(sample, self.card)).permute(2, 0, 1).contiguous()
        augmented = self.augment(tv_tensors.Image(channels)).as_subclass(torch.Tensor)
        return normalise(augmented, self.card), sample.label


@dataclass
class DetectionItem:
    image: torch.Tensor  # [C, H, W] float32, normalised
    # boxes [N, 4] (input pixels when training, image pixels when evaluating), labels [N]
    target: dict[str, torch.Tensor]
    letterbox: LetterboxInfo | None
    key: str


class DetectionData(Dataset):
    """Training (``augment`` given): letterboxed (or natively cropped) augmented inputs with targets
    in input pixels. Evaluation: ``prepare_input`` inputs with targets in image pixels."""

    def __init__(
        self,
        samples: Sequence[DetectionSample],
        card: ModelCard,
        augment: Callable[[dict], dict] | None = None,
        native_crop: bool = False,
        mixing: AugmentConfig | None = None,
    ) -> None:
        self.samples = list(samples)
        self.card = card
        self.augment = augment
        self.native_crop = native_crop
        self.mixing = mixing if mixing is not None and mixing.mixes_samples else None
        if self.mixing is not None and (native_crop or augment is None):
            raise ValueError("mosaic, mixup and copy-paste need letterboxed training inputs (not --crop)")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int | tuple[int, int]) -> DetectionItem:
        return _seeded(self._item, index)

    def _item(self, index: int) -> DetectionItem:
        sample = self.samples[index]
        if self.augment is None:
            image, reference = _load_pair(sample, self.card)
            prepared = prepare_input(image, self.card, reference)
            target = {"boxes": torch.from_numpy(sample.boxes), "labels": torch.from_numpy(sample.labels)}
            return DetectionItem(prepared.tensor, target, prepared.letterbox, sample.key)
        augmented = self._augmented(index)
        target = {"boxes": augmented.boxes, "labels": augmented.labels}
        return DetectionItem(normalise(augmented.image, self.card), target, None, sample.key)

    def _prepared(self, index: int) -> BoxedImage:
        """Letterboxed to the input size (or native, for crops), before any augmentation."""
        sample = self.samples[index]
        stacked = _stacked(sample, self.card)
        boxes = sample.boxes
        if not self.native_crop:
            _, height, width = self.card.input_size
            stacked, info = letterbox(stacked, (height, width), self.card.preprocessing.pad_value)
            boxes = boxes_to_letterbox(boxes, info)
        image = torch.from_numpy(np.ascontiguousarray(stacked)).permute(2, 0, 1).contiguous()
        return BoxedImage(image, torch.as_tensor(boxes, dtype=torch.float32), torch.from_numpy(sample.labels))

    def _random_index(self) -> int:
        return int(torch.randint(len(self.samples), ()))

    def _augmented(self, index: int, blend: bool = True) -> BoxedImage:
        """Mosaic, copy-paste, the transform, then mixup with a second such sample (itself not blended)."""
        mixing = self.mixing
        pad = self.card.preprocessing.pad_value
        if mixing is not None and float(torch.rand(())) < mixing.mosaic:
            indices = [index] + [self._random_index() for _ in range(3)]
            item = mosaic([self._prepared(i) for i in indices], zoom=mixing.mosaic_zoom, fill=pad)
        else:
            item = self._prepared(index)
        if mixing is not None and float(torch.rand(())) < mixing.copy_paste:
            item = copy_paste(item, self._prepared(self._random_index()))
        assert self.augment is not None
        item = BoxedImage.from_sample(self.augment(item.as_sample()))
        if blend and mixing is not None and float(torch.rand(())) < mixing.mixup:
            other = self._augmented(self._random_index(), blend=False)
            if other.image.shape == item.image.shape:  # a right-angle turn of a non-square input swaps its sides
                item = mixup(item, other)
        return item


@dataclass
class DetectionBatch:
    images: torch.Tensor  # [B, C, H, W]
    targets: list[dict[str, torch.Tensor]]
    letterboxes: list[LetterboxInfo | None]
    keys: list[str]


def collate_detection(items: list[DetectionItem]) -> DetectionBatch:
    return DetectionBatch(
        torch.stack([item.image for item in items]),
        [item.target for item in items],
        [item.letterbox for item in items],
        [item.key for item in items],
    )


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch: int, *, shuffle: bool, workers: int, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader seeded from ``seed``; shuffled, it draws every epoch from (seed, epoch) alone
    (:class:`EpochSampler`: call ``loader.sampler.set_epoch`` before each epoch)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    collate = collate_detection if isinstance(dataset, DetectionData) else None
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=EpochSampler(len(dataset), seed) if shuffle else None,  # type: ignore[arg-type]
        num_workers=workers,
        collate_fn=collate,
        drop_last=drop_last and len(dataset) > batch,  # type: ignore[arg-type]
        generator=generator,
        worker_init_fn=_seed_worker if workers else None,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
