"""Deterministic, stratified train/val(/test) splits, kept in a JSON file.

Training writes the split file (or reads a given one) and records it in the model card;
evaluation reads the same file, so "validation" always means the same images. Samples are
named by their key (the image path relative to the dataset root), so the file stays valid
when the dataset folder moves.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from station.training.datasets import DatasetIndex

SPLIT_VERSION = 1
SUBSETS = ("train", "val", "test")


class SplitError(ValueError):
    """A split file is unreadable or does not fit the dataset."""


@dataclass
class Split:
    seed: int
    fractions: dict[str, float]  # subset -> fraction asked for
    subsets: dict[str, list[str]]  # subset -> sorted sample keys
    dataset_root: str
    format: str
    classes: list[str]
    content_sha256: str | None = None
    # sample key -> image sha256: tells the split's own images from other images of the same name
    image_sha256: dict[str, str] = field(default_factory=dict)
    version: int = SPLIT_VERSION
    path: Path | None = field(default=None, compare=False)  # where it was loaded from / saved to

    def keys(self, subset: str) -> list[str]:
        if subset not in self.subsets:
            raise SplitError(f"split {self.path or ''} has no {subset!r} subset (it has {sorted(self.subsets)})")
        return self.subsets[subset]

    def all_keys(self) -> set[str]:
        return {key for keys in self.subsets.values() for key in keys}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("path")
        path.write_text(json.dumps(data, indent=1) + "\n")
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise SplitError(f"cannot read split file {path} ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise SplitError(f"{path}:{exc.lineno}: malformed split file ({exc.msg})") from exc
        if data.get("version") != SPLIT_VERSION:
            raise SplitError(f"{path}: split file version {data.get('version')!r}, expected {SPLIT_VERSION}")
        try:
            split = cls(**{k: data[k] for k in ("seed", "fractions", "subsets", "dataset_root", "format", "classes")},
                        content_sha256=data.get("content_sha256"), image_sha256=data.get("image_sha256", {}))
        except KeyError as exc:
            raise SplitError(f"{path}: split file lacks {exc.args[0]!r}") from exc
        split.path = path
        return split

    def known_keys(self, index: DatasetIndex) -> set[str]:
        """Keys of ``index`` that are this split's images: same key and, when both sides know it,
        the same image content (another folder may reuse the file names)."""
        listed = self.all_keys()
        known = set()
        for sample in index.samples:
            if sample.key not in listed:
                continue
            ours, theirs = self.image_sha256.get(sample.key), index.image_sha256.get(sample.key)
            if ours is None or theirs is None or ours == theirs:
                known.add(sample.key)
        return known

    def check(self, index: DatasetIndex) -> list[str]:
        """Warnings about how this split fits ``index`` (empty when it fits exactly)."""
        present = {sample.key for sample in index.samples}
        listed = self.all_keys()
        warnings = []
        missing = sorted(listed - present)
        if missing:
            warnings.append(f"{len(missing)} images in the split are not in the dataset (or were left out), "
                            f"e.g. {missing[0]}")
        extra = sorted(present - listed)
        if extra:
            warnings.append(f"{len(extra)} images in the dataset are in no subset of the split, e.g. {extra[0]}")
        if list(index.classes) != list(self.classes):
            warnings.append(f"the split's classes {self.classes} differ from the dataset's {list(index.classes)}")
        return warnings

    def describe(self, index: DatasetIndex) -> str:
        """Per-class image counts in each subset."""
        names = list(self.subsets)
        counts = {name: index.subset(self.subsets[name]).class_counts() for name in names}
        width = max([len(c) for c in index.classes] + [5])
        lines = [f"  {'class':<{width}}  " + "  ".join(f"{n:>6}" for n in names)]
        for cls in index.classes:
            lines.append(f"  {cls:<{width}}  " + "  ".join(f"{counts[n][cls][0]:>6}" for n in names))
        lines.append(f"  {'images':<{width}}  " + "  ".join(f"{len(index.subset(self.subsets[n]).samples):>6}"
                                                        for n in names))
        return "\n".join(lines)


def make_split(index: DatasetIndex, *, seed: int = 0, val: float = 0.2, test: float = 0.0) -> Split:
    """Split ``index`` per stratum (class; for detection the image's most frequent class).

    Deterministic: keys are sorted, then shuffled per stratum by a generator seeded with
    ``seed``; each stratum gives ``round(n * fraction)`` images to val and test, and keeps at
    least one for training.
    """
    if not 0 < val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise SplitError(f"split fractions val={val}, test={test} must be in (0, 1) and sum to less than 1")
    strata: dict[int, list[str]] = defaultdict(list)
    for sample in index.samples:
        strata[sample.stratum].append(sample.key)
    rng = np.random.default_rng(seed)
    subsets: dict[str, list[str]] = {"train": [], "val": []} | ({"test": []} if test > 0 else {})
    for stratum in sorted(strata):
        keys = sorted(strata[stratum])
        order = [keys[i] for i in rng.permutation(len(keys))]
        n_val = round(len(keys) * val)
        n_test = round(len(keys) * test)
        while n_val + n_test >= len(keys) and n_val + n_test > 0:  # keep one for training
            if n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        subsets["val"] += order[:n_val]
        if test > 0:
            subsets["test"] += order[n_val:n_val + n_test]
        subsets["train"] += order[n_val + n_test:]
    fractions = {"train": 1 - val - test, "val": val} | ({"test": test} if test > 0 else {})
    return Split(
        seed=seed,
        fractions=fractions,
        subsets={name: sorted(keys) for name, keys in subsets.items()},
        dataset_root=str(Path(index.root).resolve()),
        format=index.format,
        classes=list(index.classes),
        content_sha256=index.content_sha256,
        image_sha256=dict(sorted(index.image_sha256.items())),
    )
