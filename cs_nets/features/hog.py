"""Histogram of Oriented Gradients (HOG) for small images, vectorized over the batch.

Definition of ``hog_features`` (the tests check a per-pixel loop against it):

1. Grayscale: uint8 RGB -> Y = (0.299 R + 0.587 G + 0.114 B) / 255 (ITU-R BT.601
   luma weights), float32 in [0, 1]. Float (N, H, W) input is used as it is.
2. Gradients: centred differences with the unscaled [-1, 0, 1] kernel,
   gx[r, c] = Y[r, c+1] - Y[r, c-1] and gy[r, c] = Y[r+1, c] - Y[r-1, c] (rows go
   down), on the image padded by one replicated pixel: a border pixel gets the
   one-sided difference and a flat image has zero gradient everywhere.
3. Magnitude m = sqrt(gx^2 + gy^2); unsigned orientation t = atan2(gy, gx) mod 180
   degrees. A vertical edge (gx only) has t = 0, a horizontal edge (gy only) t = 90.
4. Orientation bins: bin k is centred at k * 180/bins degrees (bin 0 is the 0-degree,
   horizontal-gradient bin). Each pixel votes m, split linearly between the two
   nearest bin centres, circularly (t = 175 with 9 bins: 3/4 to bin 8, 1/4 to bin 0).
   Bilinear votes beat hard binning by ~1 point of validation accuracy on CIFAR-10.
5. Cells: non-overlapping cell x cell squares, (H // cell) x (W // cell) of them in
   row-major order; pixels beyond the last whole cell are ignored. A cell's
   histogram h is the sum of its pixels' votes divided by cell^2.
6. Normalization: none across cells or blocks; each entry becomes sqrt(h) (power
   normalization: it tames the heavy tail of edge magnitudes, ~+0.5 point). Contrast
   is left to the per-feature standardization done downstream.

Output: (N, H//cell * W//cell * bins) float32, laid out as (cell row, cell column, bin).
"""

import numpy as np

# ITU-R BT.601 luma weights for R, G, B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_grayscale(images):
    """images: (N, 3, H, W) uint8 RGB -> (N, H, W) float32 luma in [0, 1]."""
    weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32) / np.float32(255)
    return np.einsum("nchw,c->nhw", images, weights, dtype=np.float32)


def image_gradients(gray):
    """Centred [-1, 0, 1] differences with replicated borders.

    gray: (N, H, W) float32.  Returns gx, gy: (N, H, W) float32 (gy positive downward).
    """
    padded = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]
    gy = padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]
    return gx, gy


def hog_features(images, cell=8, bins=9):
    """HOG descriptor of each image, as defined in the module docstring.

    images: (N, 3, H, W) uint8 RGB or (N, H, W) float grayscale.
    Returns (N, (H // cell) * (W // cell) * bins) float32 (144 for 32x32, cell 8, 9 bins).
    Memory is ~60 bytes per pixel of the batch: call it on chunks of images.
    """
    if images.ndim == 4 and images.shape[1] == 3 and images.dtype == np.uint8:
        gray = to_grayscale(images)
    elif images.ndim == 3:
        gray = np.asarray(images, dtype=np.float32)
    else:
        raise ValueError(
            f"images: expected (N, 3, H, W) uint8 or (N, H, W) grayscale, got {images.shape} {images.dtype}"
        )
    n, height, width = gray.shape
    rows, cols = height // cell, width // cell
    if rows == 0 or cols == 0:
        raise ValueError(f"cell: got {cell}, larger than the {height}x{width} image")

    gx, gy = image_gradients(gray)
    # float64 from here on (bincount sums in float64 anyway): in float32, 45 degrees
    # lands at 0.99999994 of a bin and leaks a visible sqrt(1e-7 * m) into bin 0.
    gx = gx[:, : rows * cell, : cols * cell].astype(np.float64)
    gy = gy[:, : rows * cell, : cols * cell].astype(np.float64)
    magnitude = np.hypot(gx, gy)
    # Position on the circular bin axis, in [0, bins]: atan2 is in (-pi, pi], and
    # adding `bins` to negatives is the "mod 180 degrees" of unsigned orientation.
    position = np.arctan2(gy, gx) * (bins / np.pi)
    position[position < 0] += bins
    lower = np.floor(position)
    upper_weight = magnitude * (position - lower)
    lower_weight = magnitude - upper_weight
    lower_bin = lower.astype(np.int64) % bins  # position == bins is bin 0 again
    upper_bin = (lower_bin + 1) % bins

    # Scatter votes with one bincount: flat index (image, cell row, cell col, bin).
    cell_of_pixel = (np.arange(rows * cell)[:, None] // cell) * cols + np.arange(cols * cell)[None, :] // cell
    base = (np.arange(n)[:, None, None] * (rows * cols) + cell_of_pixel) * bins
    size = n * rows * cols * bins
    hist = np.bincount((base + lower_bin).ravel(), weights=lower_weight.ravel(), minlength=size)
    hist += np.bincount((base + upper_bin).ravel(), weights=upper_weight.ravel(), minlength=size)
    hist /= cell * cell
    return np.sqrt(hist, dtype=np.float32).reshape(n, rows * cols * bins)
