"""PNG figures for training and evaluation (matplotlib's Agg canvas: no GUI, no global backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def training_curves(rows: Sequence[Mapping[str, float]], metric_name: str, path: Path) -> Path:
    """Loss (train, and validation when logged) and the validation metric against the epoch."""
    figure = _figure(9, 3.6)
    loss_axes, metric_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    loss_axes.plot(epochs, [row["train_loss"] for row in rows], label="train")
    val_losses = [row.get("val_loss") for row in rows]
    if any(v is not None and np.isfinite(v) for v in val_losses):
        loss_axes.plot(epochs, [np.nan if v is None else v for v in val_losses], label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_axes.legend()
    metric_axes.plot(epochs, [row.get("val_metric", np.nan) for row in rows], marker="o", markersize=3)
    metric_axes.set(xlabel="epoch", ylabel=metric_name, title=f"validation {metric_name}", ylim=(0, 1.02))
    for axes in (loss_axes, metric_axes):
        axes.grid(alpha=0.3)
    figure.savefig(path)
    return path


def confusion_matrix(confusion: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    size = max(4.0, 0.6 * len(classes) + 2.5)
    figure = _figure(size, size)
    axes = figure.subplots()
    totals = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, totals, out=np.zeros(confusion.shape, float), where=totals > 0)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(confusion):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if shares[row, column] > 0.5 else "black", fontsize=8)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    figure.savefig(path)
    return path


def pr_curves(curves: Mapping[str, np.ndarray], ap50: Mapping[str, float], path: Path) -> Path:
    """COCO precision at the 101 recall points (IoU 0.5), one line per class."""
    figure = _figure(6, 5)
    axes = figure.subplots()
    recall = np.linspace(0, 1, 101)
    for name, precision in curves.items():
        valid = precision > -1
        axes.plot(recall[valid], precision[valid], label=f"{name} (AP50 {ap50.get(name, 0):.3f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall, IoU 0.5")
    axes.grid(alpha=0.3)
    if curves:
        axes.legend(fontsize=8, loc="lower left")
    figure.savefig(path)
    return path
