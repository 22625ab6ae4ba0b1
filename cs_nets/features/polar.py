"""The lecture's feature transform for 2-D points: (x, y) -> (r, θ).

Points on concentric rings cannot be told apart by a line in (x, y), but in polar
coordinates the ring is just a value of r: one threshold separates them.
"""

import numpy as np

from cs_nets.errors import DataError


def check_points(X):
    """Raise DataError unless X is (N, 2) real-valued 2-D points."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != 2 or not np.issubdtype(X.dtype, np.floating):
        got = f"{X.shape} {X.dtype}" if isinstance(X, np.ndarray) else type(X).__name__
        raise DataError(f"polar features: expected (N, 2) float points, got {got}")


def polar_features(X):
    """X: (N, 2) float points (x, y) -> (N, 2) float32 (r, θ), r = sqrt(x² + y²), θ = atan2(y, x) in (-π, π]."""
    check_points(X)
    x, y = X[:, 0].astype(np.float64), X[:, 1].astype(np.float64)
    return np.stack([np.hypot(x, y), np.arctan2(y, x)], axis=1).astype(np.float32)
