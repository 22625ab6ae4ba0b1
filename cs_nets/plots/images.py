"""Weights as pictures, in pure NumPy: templates, their selection, and mosaics.

CIFAR order: a weight column of length 3 S S holds the red plane (S x S, row-major),
then green, then blue -- the layout of the flattened (3, S, S) image it scores
(3072 values for CIFAR's 32 x 32).
"""

import math

import numpy as np

from cs_nets.errors import CsNetsError


def weights_to_images(W, image_shape=(3, 32, 32)):
    """Turn weight columns into images, each min-max rescaled to 0..255 on its own.

    Inputs:
    - W: (D, K) weights, one template per column, D = C * H * W_ in channel-first
      (CIFAR) order.
    - image_shape: (C, H, W_) of one image.

    Returns (K, H, W_, C) uint8. A constant column becomes all zeros.
    """
    W = np.asarray(W)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise CsNetsError(f"image_shape must be (channels, height, width), got {image_shape}")
    if W.ndim != 2 or W.shape[0] != math.prod(shape):
        raise CsNetsError(
            f"templates need weights of shape ({math.prod(shape)}, K) for images of shape "
            f"{shape}, got {W.shape}"
        )
    if not np.issubdtype(W.dtype, np.number) or not np.all(np.isfinite(W)):
        raise CsNetsError("cannot draw templates: the weights contain NaN, inf or non-numbers")
    W = W.astype(np.float64)
    lo, hi = W.min(axis=0), W.max(axis=0)
    span = hi - lo
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    scaled = np.clip(np.rint((W - lo) * scale), 0, 255).astype(np.uint8)
    # (D, K) -> (K, C, H, W_) -> (K, H, W_, C): channels last, as image viewers expect.
    return np.ascontiguousarray(scaled.T.reshape(-1, *shape).transpose(0, 2, 3, 1))


def pick_templates(W, max_templates):
    """Indices of at most ``max_templates`` columns of W (D, K), largest L2 norm first.

    Deterministic: ties keep column order. Large-norm hidden units are the ones that
    moved furthest from their small random initialisation, so they show the most.
    """
    if isinstance(max_templates, bool) or not isinstance(max_templates, int) or max_templates < 1:
        raise CsNetsError(f"max_templates must be a positive integer, got {max_templates!r}")
    norms = np.linalg.norm(np.asarray(W, dtype=np.float64), axis=0)
    return np.argsort(-norms, kind="stable")[:max_templates]


def tile_images(images, ncols, pad=1, fill=255):
    """Lay (N, H, W_, C) images out row by row on a grid ``ncols`` wide.

    Returns (rows * (H + pad) - pad, ncols * (W_ + pad) - pad, C) of the same dtype;
    ``pad`` pixels of ``fill`` separate tiles and fill the unused cells.
    """
    images = np.asarray(images)
    n, h, w, c = images.shape
    nrows = max(1, math.ceil(n / ncols))
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), fill, images.dtype)
    for i, image in enumerate(images):
        r, col = divmod(i, ncols)
        out[r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = image
    return out
