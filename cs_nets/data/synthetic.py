"""A small CIFAR-shaped dataset that is deterministic and learnable, for smoke runs and tests.

Each class has a smooth random colour template. An image is a shared background plus
its class template, with per-image contrast and brightness jitter, a smooth random
nuisance pattern and pixel noise. Classes differ by less than the jitter, so the
task is not trivial, yet a linear model on ~2,000 images gets well above chance.
"""

from pathlib import Path

import numpy as np

from cs_nets.data.cifar10 import RawCifar

SIDE = 32  # images are SIDE x SIDE x 3
COARSE = 5  # templates are drawn on a COARSE x COARSE grid and upsampled: smooth
SIGNAL, NUISANCE, NOISE = 35.0, 20.0, 30.0  # pixel-value scales of class, nuisance, noise


NUM_CLASSES = 10  # as CIFAR-10, so a synthetic run stands in for a real one


def make_synthetic(num_train=2000, num_test=500, seed=0, num_classes=NUM_CLASSES):
    """A RawCifar of synthetic images: X_*: (N, 3072) uint8, y_*: (N,) int64 in 0..num_classes-1.

    The same arguments always give the same arrays. Labels are balanced and shuffled.
    class_names are "class0", "class1", ...; layout is "synthetic".
    """
    rng = np.random.default_rng(seed)
    background = (128 + 40 * _smooth_fields(rng, 1)[0]).astype(np.float32)
    templates = (SIGNAL * _smooth_fields(rng, num_classes)).astype(np.float32)  # (K, 3072)
    nuisance = _smooth_fields(rng, 8).astype(np.float32)  # directions of within-class variation
    X_train, y_train = _draw(rng, background, templates, nuisance, num_train)
    X_test, y_test = _draw(rng, background, templates, nuisance, num_test)
    names = [f"class{k}" for k in range(num_classes)]
    return RawCifar(X_train, y_train, X_test, y_test, names, "synthetic",
                    Path(f"synthetic(seed={seed})"))


def _smooth_fields(rng, count):
    """(count, 3072) smooth random images with values in about -1..1, channel-major like CIFAR."""
    coarse = rng.uniform(-1, 1, size=(count, 3, COARSE, COARSE))
    # Bilinear upsampling as two small matrix products: (SIDE, COARSE) weights per axis.
    up = np.array([np.interp(np.linspace(0, COARSE - 1, SIDE), np.arange(COARSE), row)
                   for row in np.eye(COARSE)]).T
    return np.einsum("ij,kcjl,ml->kcim", up, coarse, up).reshape(count, -1)


def _draw(rng, background, templates, nuisance, n):
    """n images with balanced, shuffled labels: (n, 3072) uint8, (n,) int64."""
    num_classes = len(templates)
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    contrast = rng.uniform(0.7, 1.3, size=(n, 1)).astype(np.float32)
    brightness = rng.normal(0, 20, size=(n, 1)).astype(np.float32)
    coefficients = rng.normal(0, NUISANCE, size=(n, len(nuisance))).astype(np.float32)
    # float32 and in place: fresh memory is the slow part at this size.
    X = np.empty((n, background.size), dtype=np.float32)
    rng.standard_normal(dtype=np.float32, out=X)
    X *= NOISE
    X += coefficients @ nuisance
    signal = templates[y]
    signal += background - 128
    signal *= contrast
    X += signal
    X += 128 + brightness
    np.rint(X, out=X)
    np.clip(X, 0, 255, out=X)
    return X.astype(np.uint8), y
