"""Test helpers: bag-of-words codes computed patch by patch in float64, to hold the Encoder to."""

import numpy as np

from cs_nets.features.bow import CONTRAST_EPS


def loop_code_map(image, codebook, stride, encoding):
    """(P, P, K) codes of the patches of one (3, H, W) uint8 image, position by position."""
    p = codebook.patch
    side = (image.shape[1] - p) // stride + 1
    C = codebook.centroids.astype(np.float64)
    codes = np.zeros((side, side, len(C)))
    for i in range(side):
        for j in range(side):
            x = image[:, i * stride:i * stride + p, j * stride:j * stride + p].astype(np.float64).ravel()
            x = (x - x.mean()) / np.sqrt(x.var() + CONTRAST_EPS)
            if codebook.whiten_matrix is not None:
                x = (x - codebook.whiten_mean) @ codebook.whiten_matrix.astype(np.float64)
            d = np.array([np.sqrt(np.sum((x - c) ** 2)) for c in C])
            if encoding == "hard":
                codes[i, j, np.argmin(d)] = 1
            else:
                codes[i, j] = np.maximum(0, d.mean() - d)
    return codes


def loop_pool(codes, pooling, keep=None):
    """Mean codes of the positions of each region (``image``: all; ``quadrants``: rows and columns
    i < (P + 1) // 2 first), over the positions where keep (P, P) bool is true (None: all)."""
    side = len(codes)
    keep = np.ones((side, side), bool) if keep is None else keep
    if pooling == "image":
        return codes[keep].mean(axis=0)
    h = (side + 1) // 2
    parts = [(slice(0, h), slice(0, h)), (slice(0, h), slice(h, None)),
             (slice(h, None), slice(0, h)), (slice(h, None), slice(h, None))]
    return np.concatenate([codes[a, b][keep[a, b]].mean(axis=0) for a, b in parts])


def loop_encode(image, codebook, stride, encoding, pooling):
    """Bag-of-words code of one (3, H, W) uint8 image, patch by patch, in float64."""
    return loop_pool(loop_code_map(image, codebook, stride, encoding), pooling)
