"""What the weights look like: one template per class, or a grid of hidden units."""

import math

import numpy as np

from cs_nets.errors import CsNetsError
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure
from cs_nets.plots.images import pick_templates, tile_images, weights_to_images

WIDTH_PX = 1000
HEADER_PX = 60  # room for the title lines
LABELED_ROW_PX = 120  # one row of labeled class templates: name + image
LABELED_COLS = 10
GRID_MIN_COLS = 10


def plot_templates(W, class_names, path, title=None, max_templates=100):
    """Draw weight columns as images and write a PNG.

    Inputs:
    - W: (3 S S, K) weights in CIFAR order (red plane, green, blue; S x S row-major):
      3072 rows for CIFAR's 32x32 images; S is read from the number of rows.
    - class_names: K names -> one labeled template per class (a linear classifier),
      up to 10 per row. Otherwise (None, or K != len(class_names), e.g. W1 of a
      two-layer net) -> an unlabeled grid of the ``max_templates`` columns with the
      largest L2 norm, largest first, at least 10 per row.
    - path: PNG to write; title: first title line (a default otherwise).

    Each template is rescaled to 0..255 on its own (see ``weights_to_images``).
    Size: 1000 px wide; 60 + 120 * rows px high when labeled (10 classes: 1000x180),
    60 + rows * 1000 / columns px high as a grid (100 units: 1000x1060).
    Returns the path written.
    """
    W = np.asarray(W)
    side = math.isqrt(W.shape[0] // 3) if W.ndim == 2 else 0
    if W.ndim != 2 or W.shape[1] == 0 or side == 0 or W.shape[0] != 3 * side * side:
        raise CsNetsError(f"templates need weights of shape (3*S*S, K) for S x S colour images, K >= 1 "
                          f"(3072 for 32x32), got {W.shape}")
    shape = (3, side, side)
    if class_names is not None and len(class_names) == W.shape[1]:
        return _plot_labeled(weights_to_images(W, shape), [str(n) for n in class_names], path, title)
    picked = pick_templates(W, max_templates)
    return _plot_grid(weights_to_images(W[:, picked], shape), W.shape[1], path, title)


def _plot_labeled(images, names, path, title):
    """One cell per class: name above its template, 10 per row."""
    ncols = min(len(images), LABELED_COLS)
    nrows = math.ceil(len(images) / ncols)
    plt = require_matplotlib()
    fig = new_figure(plt, WIDTH_PX, HEADER_PX + nrows * LABELED_ROW_PX)
    fig.suptitle(title or "Learned templates: one per class", fontsize=12)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, name in zip(axes.flat, images, names):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=9, pad=3)
    return save_figure(plt, fig, path)


def _plot_grid(images, total, path, title):
    """All picked templates as one mosaic (one imshow is fast even for 100s of units)."""
    n = len(images)
    ncols = min(n, max(GRID_MIN_COLS, math.ceil(math.sqrt(n))))
    nrows = math.ceil(n / ncols)
    plt = require_matplotlib()
    fig = new_figure(plt, WIDTH_PX, HEADER_PX + round(nrows * WIDTH_PX / ncols))
    shown = f"all {n} hidden units" if n == total else \
        f"{n} of {total} hidden units (largest weight norm first)"
    fig.suptitle(
        f"{title or 'First-layer templates (columns of W1)'}\n"
        f"{shown}, each rescaled to 0-255 on its own",
        fontsize=11,
    )
    ax = fig.add_subplot()
    ax.imshow(tile_images(images, ncols, pad=2), interpolation="nearest")
    ax.axis("off")
    return save_figure(plt, fig, path)

