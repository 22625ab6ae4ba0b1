"""Classification metrics from labels and predictions, and scores averaged over views of the images."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """(C,) fraction of each true class predicted correctly (nan for a class with no images)."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / totals


def accuracy_of(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def mean_scores(model, views: list[np.ndarray]) -> np.ndarray:
    """(N, C) float32: the model's class scores of each view, averaged.

    views: one (N, D) array of model inputs per view of the same N images (the images, then
    their mirrors and moved copies: data.hflip_average, data.shift_average), a test-time
    augmentation that keeps one score vector per image.
    """
    out = np.array(model.loss(views[0]), dtype=np.float32)
    for X in views[1:]:
        out += model.loss(X)
    if len(views) > 1:
        out /= np.float32(len(views))
    return out


def accuracy_of_views(model, views: list[np.ndarray], y: np.ndarray, chunk: int) -> float:
    """Fraction of the N images whose ``mean_scores`` argmax equals y (N,), `chunk` rows at a time."""
    if len(y) == 0:
        return float("nan")
    right = 0
    for start in range(0, len(y), chunk):
        part = slice(start, start + chunk)
        right += int(np.count_nonzero(mean_scores(model, [X[part] for X in views]).argmax(axis=1) == y[part]))
    return right / len(y)
