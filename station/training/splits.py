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
    source: str = "random"  # "random" (make_split) or "dataset: <the lists it came from>"
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
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise SplitError(f"cannot read split file {path} ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise SplitError(f"{path}:{exc.lineno}: malformed split file ({exc.msg})") from exc
        if data.get("version") != SPLIT_VERSION:
            raise SplitError(f"{path}: split file version {data.get('version')!r}, expected {SPLIT_VERSION}")
        try:
            split = cls(**{k: data[k] for k in ("seed", "fractions", "subsets", "dataset_root", "format", "classes")},
                        content_sha256=data.get("content_sha256"), image_sha256=data.get("image_sha256", {}),
                        source=data.get("source", "random"))
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


# --- the dataset's own split ----------------------------------------------------------------

SPLIT_SOURCES = ("auto", "dataset", "random")


def dataset_split(index: DatasetIndex, *, seed: int = 0, val: float = 0.2) -> Split | None:
    """The split the dataset ships, or None when it ships none.

    YOLO: ``train:`` / ``val:`` / ``test:`` of data.yaml (folders or image lists). Pascal VOC:
    ``ImageSets/Main/{train,val,trainval,test}.txt``. DeepPCB: ``trainval.txt`` / ``test.txt``.
    COCO: one annotation file per split (``annotations/instances_{train,val}2017.json`` or
    Roboflow's ``{train,valid,test}/_annotations.coco.json``).
    A dataset whose split has no validation part (VOC ``trainval`` only, DeepPCB) gets one
    carved from its training part, stratified as in :func:`make_split` with fraction ``val``;
    the split's ``source`` says so. Images the dataset's lists do not name are left out of every
    subset (``Split.check`` reports them).
    """
    found = _OFFICIAL_READERS.get(index.format, lambda _index: None)(index)
    if not found:
        return None
    source, named = found
    by_key = {sample.key: sample for sample in index.samples}
    subsets = {name: sorted(key for key in keys if key in by_key) for name, keys in named.items()}
    subsets = {name: keys for name, keys in subsets.items() if keys}
    if "train" not in subsets:
        return None
    overlap = set(subsets["train"]) & set(subsets.get("val", [])) | set(subsets["train"]) & set(subsets.get("test", []))
    if overlap:
        raise SplitError(f"the dataset's own split ({source}) puts {len(overlap)} images in two subsets, "
                         f"e.g. {sorted(overlap)[0]}; use --split-from random")
    if "val" not in subsets:
        carved = make_split(index.subset(subsets["train"]), seed=seed, val=val)
        subsets["train"], subsets["val"] = carved.subsets["train"], carved.subsets["val"]
        source += f"; val carved from its training part (fraction {val}, seed {seed})"
    total = sum(len(keys) for keys in subsets.values())
    return Split(
        seed=seed,
        fractions={name: round(len(keys) / total, 4) for name, keys in subsets.items()},
        subsets=subsets,
        dataset_root=str(Path(index.root).resolve()),
        format=index.format,
        classes=list(index.classes),
        content_sha256=index.content_sha256,
        image_sha256={k: v for k, v in sorted(index.image_sha256.items()) if any(k in s for s in subsets.values())},
        source=f"dataset: {source}",
    )


def _keys_by_stem(index: DatasetIndex, stem_of=lambda path: path.stem) -> dict[str, str]:
    return {stem_of(sample.image_path): sample.key for sample in index.samples}


def _list_lines(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text(encoding="utf-8-sig").splitlines() if line.split()]


def _voc_split(index: DatasetIndex) -> tuple[str, dict[str, list[str]]] | None:
    folder = next((p for p in (index.root / "ImageSets" / "Main", index.root / "ImageSets") if p.is_dir()), None)
    if folder is None:
        return None
    stems = _keys_by_stem(index)
    lists = {name: [stems[s] for s in _list_lines(folder / f"{name}.txt") if s in stems]
             for name in ("train", "val", "trainval", "test") if (folder / f"{name}.txt").is_file()}
    if "train" not in lists and "trainval" in lists:
        lists["train"] = lists["trainval"]
    lists.pop("trainval", None)
    return (str(folder.relative_to(index.root).as_posix()), lists) if lists else None


def _deeppcb_split(index: DatasetIndex) -> tuple[str, dict[str, list[str]]] | None:
    # lines name "<group>/<n>/<id>.jpg"; the files on disk are "<id>_test.jpg"
    stems = _keys_by_stem(index, lambda path: path.name[: -len("_test.jpg")])
    lists = {}
    for file_name, subset in (("trainval.txt", "train"), ("test.txt", "test")):
        path = index.root / file_name
        if path.is_file():
            lists[subset] = [stems[Path(line).stem] for line in _list_lines(path) if Path(line).stem in stems]
    return (" + ".join(f for f in ("trainval.txt", "test.txt") if (index.root / f).is_file()), lists) if lists else None


def _yolo_split(index: DatasetIndex) -> tuple[str, dict[str, list[str]]] | None:
    from station.training.datasets import read_data_yaml

    yaml_path = next((index.root / n for n in ("data.yaml", "dataset.yaml") if (index.root / n).is_file()), None)
    if yaml_path is None:
        return None
    data = read_data_yaml(yaml_path)
    base = Path(str(data.get("path") or "."))
    base = base if base.is_absolute() and base.is_dir() else index.root / base
    if not base.is_dir():
        base = index.root
    keys_by_path = {sample.image_path.resolve(): sample.key for sample in index.samples}
    lists: dict[str, list[str]] = {}
    for subset in SUBSETS:
        entries = data.get(subset)
        entries = [entries] if isinstance(entries, str) else entries or []
        keys: list[str] = []
        for entry in entries:
            target = base / str(entry)
            if target.is_dir():
                keys += [key for path, key in keys_by_path.items() if target.resolve() in path.parents]
            elif target.is_file():
                for line in _list_lines(target):
                    image = (base / line).resolve() if not Path(line).is_absolute() else Path(line).resolve()
                    if image in keys_by_path:
                        keys.append(keys_by_path[image])
        if keys:
            lists[subset] = keys
    same = "train" in lists and lists.get("val") == lists["train"]
    if same:  # e.g. `station synth`'s data.yaml, whose train and val both name images/
        return None
    return (yaml_path.name, lists) if lists else None


def _coco_split(index: DatasetIndex) -> tuple[str, dict[str, list[str]]] | None:
    from station.training.datasets import coco_image_paths, coco_split_files

    files = coco_split_files(index.root)
    if not files:
        return None
    keys_by_path = {sample.image_path.resolve(): sample.key for sample in index.samples}
    lists = {subset: [keys_by_path[p.resolve()] for p in coco_image_paths(path, index.root).values()
                      if p.resolve() in keys_by_path]
             for subset, path in files.items()}
    return " + ".join(path.relative_to(index.root).as_posix() for path in files.values()), lists


_OFFICIAL_READERS = {"voc": _voc_split, "deeppcb": _deeppcb_split, "yolo": _yolo_split, "coco": _coco_split}
