"""Random search (CS231n lecture 3, "Strategy #1"): try random weights, keep the best.

Each attempt draws a linear classifier W (D, C), b (C,) ~ N(0, scale²) and scores it
by its data loss on the training set (or a fixed random subsample of it). Attempts
are scored ``chunk`` at a time with one matrix product X @ W_stack, W_stack (D, chunk*C),
so memory stays at about N * chunk * C scores whatever the number of attempts.
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from cs_nets.errors import ArgumentError
from cs_nets.nn.losses import LOSSES
from cs_nets.nn.models import LinearClassifier
from cs_nets.nn.models.base import check_choice, check_int


@dataclass
class SearchResult:
    """model: the best linear model; losses: (attempts,) float64 data loss of each attempt."""

    model: LinearClassifier
    best_loss: float
    losses: np.ndarray
    best_attempt: int


def random_search(X, y, *, attempts=1000, scale=1e-4, loss="svm", subsample=None, seed=0,
                  num_classes=10, chunk=16, progress=None):
    """Keep the lowest-loss of ``attempts`` random linear classifiers.

    X: (N, D) features (float32/float64 kept; anything else becomes float32)
    y: (N,) integer labels in [0, num_classes)
    subsample: score on this many images (None or >= N: all of them), the same for
        every attempt: rows default_rng(child 0).choice(N, subsample, replace=False),
        sorted, where children are spawned from SeedSequence(seed)
    seed: attempt i draws W then b from its own generator, child i + 1, so results
        are identical for the same seed and do not depend on ``chunk``
    progress: optional callback progress(attempt_index, best_loss), called after each
        attempt (0-based index, best data loss so far)
    Returns SearchResult; result.model.loss(X_scored, y_scored)[0] == best_loss up to
    rounding (the model computes X @ W instead of a slice of X @ W_stack).
    """
    attempts = check_int("attempts", attempts, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    loss_fn = LOSSES[check_choice("loss", loss, LOSSES)]
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not (
        math.isfinite(scale) and scale > 0
    ):
        raise ArgumentError(f"scale: expected a finite number > 0, got {scale!r}")
    if progress is not None and not callable(progress):
        raise ArgumentError(f"progress: expected a callable or None, got {progress!r}")
    X, y = _check_data(X, y, num_classes)

    root = np.random.SeedSequence(seed)
    (subsample_seq,) = root.spawn(1)
    attempt_seqs = root.spawn(attempts)
    if subsample is not None:
        subsample = check_int("subsample", subsample, minimum=1)
        if subsample < X.shape[0]:
            rows = np.random.default_rng(subsample_seq).choice(X.shape[0], subsample, replace=False)
            rows.sort()  # keep the data order; only the choice is random
            X, y = X[rows], y[rows]

    D, C, dtype = X.shape[1], num_classes, X.dtype
    losses = np.empty(attempts)
    best_loss, best_W, best_b = math.inf, None, None
    W_stack = np.empty((D, chunk, C), dtype=dtype)  # attempt j's W is W_stack[:, j, :]
    b_stack = np.empty((chunk, C), dtype=dtype)

    for start in range(0, attempts, chunk):
        k = min(chunk, attempts - start)
        for j in range(k):
            rng = np.random.default_rng(attempt_seqs[start + j])
            W_stack[:, j, :] = scale * rng.standard_normal((D, C))  # float64 draw, cast
            b_stack[j] = scale * rng.standard_normal(C)
        # One product scores k attempts: (N, D) @ (D, k*C) -> (N, k, C)
        scores = (X @ W_stack[:, :k].reshape(D, k * C)).reshape(-1, k, C)
        scores += b_stack[:k]
        for j in range(k):
            attempt = start + j
            losses[attempt], _ = loss_fn(scores[:, j, :], y)
            if losses[attempt] < best_loss:
                best_loss = float(losses[attempt])
                best_W, best_b = W_stack[:, j, :].copy(), b_stack[j].copy()
            if progress is not None:
                progress(attempt, best_loss)

    model = LinearClassifier(D, C, dtype=dtype, loss=loss, reg=0.0, init=float(scale))
    model.load_params({"W": best_W, "b": best_b})
    return SearchResult(model, best_loss, losses, int(np.argmin(losses)))


def _check_data(X, y, num_classes):
    """X as a 2-D float array and y as (N,) labels in [0, num_classes), else ArgumentError."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ArgumentError(f"X: expected a non-empty 2-D (N, D) array, got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ArgumentError(f"y: expected ({X.shape[0]},) integer labels, got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ArgumentError(
            f"y: expected labels in [0, {num_classes}), got range [{y.min()}, {y.max()}]"
        )
    return X, y
