"""Decision regions of a model on 2-D points: which class wins at every place of the plane.

The plane is cut into a grid of pixels, every pixel centre goes through the
run's own input pipeline (features such as polar, then normalization) and the
model, and the pixel takes the light colour of the predicted class; the points
are drawn on top in the full colour of their true class.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cs_nets.errors import CsNetsError
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure

SIZE_PX = 600  # one picture: 600 x 600
PANEL_PX = 400  # one panel of a grid: 400 x 430 (room for the title)
RESOLUTION = 300  # grid pixels per side of the plane
MARGIN = 0.1  # the plane shown: the points' bounding square, widened by this fraction on each side
# Class k has colour PALETTE[k % 10] (matplotlib's tab10), so no import is needed to know it.
PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]]) / 255
LIGHTEN = 0.55  # region colour = (1 - LIGHTEN) * class colour + LIGHTEN * white


def class_colors(num_classes):
    """(K, 3) float RGB in 0..1: the points' colour of each class."""
    return PALETTE[np.arange(num_classes) % len(PALETTE)]


def region_colors(num_classes):
    """(K, 3) float RGB in 0..1: the light colour of each class's region."""
    return (1 - LIGHTEN) * class_colors(num_classes) + LIGHTEN


def plane_bounds(X, margin=MARGIN):
    """(xmin, xmax, ymin, ymax) of a square around the points X: (N, 2), widened by `margin`."""
    lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6) * (1 + 2 * margin)
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def region_grid(predict, bounds, resolution=RESOLUTION):
    """The predicted class at each pixel centre of the plane.

    predict: callable (M, 2) float32 points -> (M,) int labels. bounds: (xmin, xmax, ymin, ymax).
    Returns (resolution, resolution) int64 labels; row 0 is the bottom (ymin), column 0 the left.
    """
    xmin, xmax, ymin, ymax = bounds
    step_x, step_y = (xmax - xmin) / resolution, (ymax - ymin) / resolution
    xs = xmin + step_x * (np.arange(resolution) + 0.5)
    ys = ymin + step_y * (np.arange(resolution) + 0.5)
    gx, gy = np.meshgrid(xs, ys)  # (rows = y, cols = x)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    return np.asarray(predict(points), dtype=np.int64).reshape(resolution, resolution)


def pipeline_predictor(model, inputs):
    """predict(points (M, 2)) through the run's input pipeline and model -> (M,) labels."""
    def predict(points):
        return model.predict(inputs.transform(inputs.extract(points, None, progress=False)))
    return predict


def draw_regions(ax, predict, X, y, num_classes, title=None, resolution=RESOLUTION):
    """Draw the regions of `predict` and the points X: (N, 2) with labels y: (N,) on a matplotlib axes."""
    bounds = plane_bounds(X)
    labels = region_grid(predict, bounds, resolution)
    ax.imshow(region_colors(num_classes)[labels], origin="lower", extent=bounds, interpolation="nearest")
    ax.scatter(X[:, 0], X[:, 1], c=class_colors(num_classes)[y], s=14, edgecolors="black", linewidths=0.5)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def _check_points(X, y):
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2 or len(X) == 0 or y.shape != (len(X),):
        raise CsNetsError(f"decision regions need points (N, 2) and labels (N,), got {X.shape} and {y.shape}")
    return X, y.astype(np.int64)


def plot_regions(predict, X, y, path, num_classes=None, title=None):
    """One picture (600 x 600 px) of the decision regions of `predict` with the points on top.

    predict: callable (M, 2) float32 -> (M,) labels (see ``pipeline_predictor``).
    X: (N, 2) points, y: (N,) labels in 0..K-1. Returns the path written.
    """
    X, y = _check_points(X, y)
    num_classes = num_classes or int(y.max()) + 1
    plt = require_matplotlib()
    fig = new_figure(plt, SIZE_PX, SIZE_PX)
    draw_regions(fig.add_subplot(), predict, X, y, num_classes, title)
    return save_figure(plt, fig, path)


def plot_region_grid(panels, path, title=None, ncols=3):
    """A grid of decision-region panels, 400 x 430 px each (plus a title row).

    panels: dicts with keys predict, X, y, title (and optionally num_classes), as for ``plot_regions``.
    Returns the path written.
    """
    if not panels:
        raise CsNetsError("nothing to plot: no panels")
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    plt = require_matplotlib()
    fig = new_figure(plt, ncols * PANEL_PX, nrows * (PANEL_PX + 30) + (40 if title else 0))
    if title:
        fig.suptitle(title, fontsize=12)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        X, y = _check_points(panel["X"], panel["y"])
        draw_regions(ax, panel["predict"], X, y, panel.get("num_classes") or int(y.max()) + 1, panel.get("title"))
    return save_figure(plt, fig, path)


def run_panel(run_dir, label=None):
    """A panel of a finished 2-D run: its model and pipeline over its training points.

    Returns a dict for ``plot_region_grid`` (the title holds `label` or the run's
    name and the accuracy on every training point), or None when the run is not on 2-D points.
    """
    from cs_nets import registry
    from cs_nets.config import config_from_dict
    from cs_nets.data.pipeline import load_images, split_of
    from cs_nets.runs.checkpoint import load_checkpoint

    model, inputs, meta = load_checkpoint(run_dir)
    config = config_from_dict(meta["config"])
    if config.data.source not in registry.POINT_SOURCES:
        return None
    raw, _ = load_images(config.data, config.seed)  # generated from the seed: the very same points
    split = split_of(raw, config.data, config.seed)
    predict = pipeline_predictor(model, inputs)
    train_acc = float(np.mean(predict(split.X_train) == split.y_train))
    return {"predict": predict, "X": split.X_train, "y": split.y_train, "num_classes": len(split.class_names),
            "title": f"{label or Path(run_dir).name}\ntrain accuracy {train_acc:.2f}", "train_accuracy": train_acc}
