"""Test helpers: mirrored and moved images made the slow, obvious way, to hold the product's views to."""

import numpy as np


def mirrored_by_loop(rows, side=32):
    """Each (3 S S) row's image with its columns in reverse order, one column at a time."""
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        image, flipped = row.reshape(3, side, side), out[i].reshape(3, side, side)
        for col in range(side):
            flipped[:, :, col] = image[:, :, side - 1 - col]
    return out


def viewed_by_loop(rows, view, side=32):
    """Each (3 S S) row's image as `view` shows it (mirrored, then moved dy down and dx right, the
    uncovered rows and columns copies of the edge), one row, then one column at a time."""
    source = mirrored_by_loop(rows, side) if view.mirrored else rows
    out = np.empty_like(rows)
    for i, row in enumerate(source):
        image, moved = row.reshape(3, side, side), out[i].reshape(3, side, side)
        down = np.empty_like(image)
        for y in range(side):
            down[:, y, :] = image[:, min(max(y - view.dy, 0), side - 1), :]
        for x in range(side):
            moved[:, :, x] = down[:, :, min(max(x - view.dx, 0), side - 1)]
    return out
