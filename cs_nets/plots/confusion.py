"""The confusion matrix as a heatmap: which classes get mistaken for which."""

import numpy as np

from cs_nets.errors import CsNetsError
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure

WIDTH_PX, HEIGHT_PX = 700, 650
MAX_ANNOTATED = 20  # beyond this many classes the counts no longer fit in the cells


def row_normalize(confusion):
    """(C, C) counts -> (C, C) float64 fractions of each true class (row); empty rows -> 0."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)


def plot_confusion(confusion, class_names, path, title=None):
    """Draw a confusion matrix and write a PNG.

    Inputs:
    - confusion: (C, C) non-negative integer counts; row = true class,
      column = predicted class.
    - class_names: C names for the axes; path: PNG to write; title: first title line.

    Cell color is the row-normalized fraction (per-class recall on the diagonal),
    so rare and common classes read alike; the cell text is the raw count (up to
    20 classes; beyond that no counts and every k-th class named). The title shows
    the overall accuracy and the number of images.
    Size: 700x650 px. Returns the path written.
    """
    counts = np.asarray(confusion)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise CsNetsError(f"confusion matrix must be square (C, C), got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or not np.all(np.isfinite(counts)) \
            or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise CsNetsError("confusion matrix must hold non-negative integer counts")
    if class_names is None or len(class_names) != counts.shape[0]:
        got = "none" if class_names is None else len(class_names)
        raise CsNetsError(f"confusion matrix has {counts.shape[0]} classes but {got} class names")
    counts = counts.astype(np.int64)
    fractions = row_normalize(counts)
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")

    plt = require_matplotlib()
    fig = new_figure(plt, WIDTH_PX, HEIGHT_PX)
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="fraction of the true class")
    # Past 20 classes only every k-th name fits on the axes.
    step = -(-len(class_names) // MAX_ANNOTATED)
    ticks = np.arange(0, len(class_names), step)
    names = [str(class_names[i]) for i in ticks]
    ax.set_xticks(ticks, names, rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(ticks, names, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title or 'Confusion matrix'}\naccuracy {accuracy:.3f} on {total} images",
                 fontsize=11)
    if len(class_names) <= MAX_ANNOTATED:
        for (i, j), count in np.ndenumerate(counts):
            # White on dark cells, black on light ones.
            color = "white" if fractions[i, j] > 0.5 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color,
                    fontsize=8 if len(class_names) <= 10 else 6)
    return save_figure(plt, fig, path)
