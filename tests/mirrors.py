"""Test helper: left-right mirrors made the slow, obvious way, to hold the product's mirrors to."""

import numpy as np


def mirrored_by_loop(rows, side=32):
    """Each (3 S S) row's image with its columns in reverse order, one column at a time."""
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        image, flipped = row.reshape(3, side, side), out[i].reshape(3, side, side)
        for col in range(side):
            flipped[:, :, col] = image[:, :, side - 1 - col]
    return out
