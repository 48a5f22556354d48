"""PNG plots: the confusion matrix (a run folder's, and `dermtool bench --plots`) and the training curves.

matplotlib is used with the non-interactive ``Agg`` backend (no display needed) through its
object-oriented API, so nothing touches global pyplot state; every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dermtool.io_utils import atomic_path


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path,
                          title: str = "Confusion matrix") -> Path:
    """Rows = true class, columns = predicted class; colour = share of the row, text = share and count."""
    counts = np.asarray(matrix, dtype=np.int64)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=float), where=row_totals > 0)
    size = max(4.0, 0.75 * len(labels) + 2.0)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class (recall)")
    axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels=[f"{label} (n={int(total)})"
                                                 for label, total in zip(labels, row_totals[:, 0])])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            share = shares[row, column]
            axes.text(column, row, f"{share:.2f}\n{counts[row, column]}", ha="center", va="center",
                      fontsize=7, color="white" if share > 0.5 else "black")
    return _save(figure, path)


def plot_training_curves(history: Sequence[Mapping[str, object]], path: str | Path,
                         best_epoch: int | None = None) -> Path:
    """Loss (train and validation) and validation balanced accuracy per epoch; phases shaded."""
    epochs = [int(row["epoch"]) for row in history]
    figure = _figure(9.0, 3.6)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [float(row["loss"]) for row in history], marker="o", label="train loss")
    loss_axes.plot(epochs, [float(row["val_loss"]) for row in history], marker="o", label="val loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    loss_axes.set_title("Loss")
    accuracy_axes.plot(epochs, [float(row["val_balanced_accuracy"]) for row in history], marker="o",
                       color="tab:green", label="val balanced accuracy")
    accuracy_axes.plot(epochs, [float(row["val_accuracy"]) for row in history], marker=".",
                       color="tab:gray", linestyle="--", label="val accuracy")
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylim(0.0, 1.0)
    accuracy_axes.set_title("Validation")
    head_epochs = [epoch for epoch, row in zip(epochs, history) if row["phase"] == "head"]
    for axes in (loss_axes, accuracy_axes):
        if head_epochs:
            axes.axvspan(min(head_epochs) - 0.5, max(head_epochs) + 0.5, color="0.9", zorder=0,
                         label="head only (frozen backbone)")
        if best_epoch is not None:
            axes.axvline(best_epoch, color="tab:red", linestyle=":", label=f"best epoch ({best_epoch})")
        axes.legend(fontsize=7)
        if epochs:
            axes.set_xticks(epochs)
    return _save(figure, path)


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", bbox_inches="tight")  # keep axis labels inside
    return path
