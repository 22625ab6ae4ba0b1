"""Color histograms: hue (HSV) or per-channel RGB, one normalized histogram per image."""

import numpy as np


def hue_bins(images, bins):
    """Hue bin index of every pixel, computed exactly in integers.

    images: (N, 3, H, W) uint8 RGB.  Returns (N, H, W) int32 in [0, bins).
    Hue follows ``colorsys.rgb_to_hsv``: h = (sector + (a - b) / (max - min)) / 6 mod 1,
    with sector 0 when red is the max (a, b = g, b), 2 for green (b, r), 4 for blue
    (r, g), checked in that order; gray pixels (max == min) get hue 0.
    The bin is floor(h * bins). Both are done as integer ratios
    t / (6 * delta) so that hues sitting on a bin edge (pure yellow = 1/6) never
    fall on the wrong side through float rounding.
    """
    rgb = images.astype(np.int32)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    hi = np.maximum(np.maximum(r, g), b)
    delta = hi - np.minimum(np.minimum(r, g), b)
    t = np.where(hi == r, g - b, np.where(hi == g, 2 * delta + b - r, 4 * delta + r - g))
    t = np.where(t < 0, t + 6 * delta, t)  # hue in [0, 1) <=> t in [0, 6 * delta)
    return np.where(delta > 0, t * bins // np.maximum(6 * delta, 1), 0)


def color_histogram(images, bins=10, space="hsv"):
    """Fraction of pixels falling in each color bin.

    images: (N, 3, H, W) uint8 RGB.
    space="hsv": hue in [0, 1) cut into ``bins`` equal bins (see ``hue_bins``);
        returns (N, bins) float32, each row sums to 1.
    space="rgb": each channel's values 0..255 cut into ``bins`` equal bins
        (bin = value * bins // 256); returns (N, 3 * bins) float32 laid out
        [red bins, green bins, blue bins], each channel's part sums to 1.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected (N, 3, H, W) uint8, got {images.shape} {images.dtype}")
    n, _, height, width = images.shape
    if space == "hsv":
        index = hue_bins(images, bins).reshape(n, -1)
        groups = n
    elif space == "rgb":
        index = (images.reshape(n * 3, -1).astype(np.int32) * bins) >> 8
        groups = n * 3
    else:
        raise ValueError(f"space: got {space!r}, expected 'hsv' or 'rgb'")
    # One bincount for the whole batch: offset each histogram's bins by its row.
    offsets = (np.arange(groups, dtype=np.int64) * bins)[:, None]
    counts = np.bincount((index + offsets).ravel(), minlength=groups * bins)
    return (counts.reshape(n, -1) / np.float32(height * width)).astype(np.float32)
