"""2-D toy problems of the lecture: points in the plane, K classes, for pictures of decision regions.

    circles  K concentric rings, class k at radius (k + 1) / K (the feature slide's
             red and blue rings: no line separates them, one threshold on r does)
    spiral   K arms winding out from the centre (the CS231n notes' spiral: a linear
             classifier gets about 1/K of it, a small net nearly all)
    blobs    K round clusters centred on the unit circle (linearly separable for small noise)

Every point gets Gaussian noise of std ``noise`` added to each coordinate. The
same arguments always give the same points; rows are shuffled, labels balanced.
"""

from pathlib import Path

import numpy as np

from cs_nets.data.cifar10 import RawCifar
from cs_nets.errors import ArgumentError
from cs_nets.registry import POINT_SOURCES

DEFAULT_CLASSES = {"circles": 2, "spiral": 3, "blobs": 3}


# Each shape: (rng, class k, classes K, n points) -> x (n,), y (n,) before noise.
def _circles(rng, k, num_classes, n):
    angle = rng.uniform(0, 2 * np.pi, size=n)
    radius = (k + 1) / num_classes
    return radius * np.cos(angle), radius * np.sin(angle)


def _spiral(rng, k, num_classes, n):
    # As in the CS231n notes: radius grows linearly along the arm, which turns ~4 radians.
    radius = np.linspace(0.0, 1.0, n)
    angle = np.linspace(k * 4.0, (k + 1) * 4.0, n)
    return radius * np.sin(angle), radius * np.cos(angle)


def _blobs(rng, k, num_classes, n):
    angle = 2 * np.pi * k / num_classes
    return np.full(n, np.cos(angle)), np.full(n, np.sin(angle))


_SHAPES = {"circles": _circles, "spiral": _spiral, "blobs": _blobs}


def make_points(source, points_per_class, num_classes, noise, rng):
    """(K * points_per_class, 2) float32 points and (N,) int64 labels of one draw, shuffled."""
    shape = _SHAPES[source]
    X = np.empty((num_classes * points_per_class, 2))
    y = np.repeat(np.arange(num_classes), points_per_class)
    for k in range(num_classes):
        rows = slice(k * points_per_class, (k + 1) * points_per_class)
        X[rows, 0], X[rows, 1] = shape(rng, k, num_classes, points_per_class)
    X += rng.normal(0.0, noise, size=X.shape)
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def make_toy(source, points_per_class=100, num_classes=None, noise=0.1, seed=0):
    """A RawCifar of 2-D points: X_*: (K * points_per_class, 2) float32, y_*: (N,) int64 in 0..K-1.

    The test split is a second, independent draw of the same size. num_classes:
    None for the source's default (circles 2, spiral and blobs 3).
    class_names are "class0", "class1", ...; layout is "points".
    """
    if source not in POINT_SOURCES:
        raise ArgumentError(f"source: expected one of {', '.join(POINT_SOURCES)}, got {source!r}")
    k = DEFAULT_CLASSES[source] if num_classes is None else num_classes
    if k < 2 or points_per_class < 1 or noise < 0:
        raise ArgumentError(f"need num_classes >= 2, points_per_class >= 1 and noise >= 0, "
                            f"got {k}, {points_per_class}, {noise}")
    rng = np.random.default_rng(seed)
    X_train, y_train = make_points(source, points_per_class, k, noise, rng)
    X_test, y_test = make_points(source, points_per_class, k, noise, rng)
    return RawCifar(X_train, y_train, X_test, y_test, [f"class{i}" for i in range(k)], "points",
                    Path(f"{source}(seed={seed})"))
