"""Update rules and learning-rate schedules.

Every rule has the course's signature ``rule(w, dw, config) -> (next_w, config)``:
the rule's state (velocity, ...) lives in ``config``, so a new rule touches only
this file. For speed, ``next_w`` is ``w`` updated in place and ``dw`` is used as
scratch space: the trainer hands over a gradient it no longer needs.

config keys: ``learning_rate`` (required), ``momentum`` (default 0.9 for the
momentum rules), ``velocity`` (created on the first call, like ``w``).

A momentum step is four passes over w-sized arrays (NumPy has no fused multiply-add).
For a big weight matrix (W1 of the two-layer net is 6 MB) the passes go block by
block, so each block is read from memory once and the other passes find it in cache.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_ELEMENTS = 1 << 16  # ~256 KB of float32 per array: three arrays' blocks fit in L2


def blocks(*arrays):
    """Matching views of same-shaped arrays, cut along the first axis into ~BLOCK_ELEMENTS pieces.

    Yields the arrays themselves when they are small (or 0-d).
    """
    first = arrays[0]
    if first.ndim == 0 or first.size <= BLOCK_ELEMENTS:
        yield arrays
        return
    step = max(1, BLOCK_ELEMENTS * len(first) // first.size)
    for start in range(0, len(first), step):
        yield tuple(a[start:start + step] for a in arrays)


def sgd(w: np.ndarray, dw: np.ndarray, config: dict):
    """Vanilla SGD: w -= learning_rate * dw."""
    lr = config["learning_rate"]
    for w_part, dw_part in blocks(w, dw):
        dw_part *= lr
        w_part -= dw_part
    return w, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: dict):
    """Momentum: v = momentum * v - learning_rate * dw;  w += v."""
    v = config.get("velocity")
    if v is None:
        v = config["velocity"] = np.zeros_like(w)
    lr, mu = config["learning_rate"], config.get("momentum", 0.9)
    for w_part, dw_part, v_part in blocks(w, dw, v):
        dw_part *= lr
        v_part *= mu
        v_part -= dw_part
        w_part += v_part
    return w, config


def nesterov_momentum(w: np.ndarray, dw: np.ndarray, config: dict):
    """Nesterov momentum in its look-ahead form (as in the CS231n notes):

    v = momentum * v - learning_rate * dw;  w += momentum * v - learning_rate * dw
    """
    v = config.get("velocity")
    if v is None:
        v = config["velocity"] = np.zeros_like(w)
    lr, mu = config["learning_rate"], config.get("momentum", 0.9)
    for w_part, dw_part, v_part in blocks(w, dw, v):
        dw_part *= lr
        v_part *= mu
        v_part -= dw_part
        w_part -= dw_part
        # w += mu * v without a temporary: reuse dw (already consumed) as scratch.
        np.multiply(v_part, mu, out=dw_part)
        w_part += dw_part
    return w, config


def update_rule(momentum: float, nesterov: bool):
    """The rule for an optim config: plain SGD, momentum or Nesterov momentum."""
    if momentum == 0.0:
        return sgd
    return nesterov_momentum if nesterov else sgd_momentum


def learning_rate(base: float, schedule: str, epoch: int, num_epochs: int, lr_decay: float = 1.0) -> float:
    """Learning rate of 0-based `epoch`.

    constant: base;  step: base * lr_decay**epoch;
    cosine: base * (1 + cos(pi * epoch / num_epochs)) / 2, from base down towards 0.
    """
    if schedule == "constant":
        return base
    if schedule == "step":
        return base * lr_decay**epoch
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * epoch / num_epochs))
    raise ValueError(f"unknown schedule {schedule!r}")
