"""Update rules and learning-rate schedules.

Every rule has the course's signature ``rule(w, dw, config) -> (next_w, config)``:
the rule's state (velocity, ...) lives in ``config``, so a new rule touches only
this file. For speed, ``next_w`` is ``w`` updated in place and ``dw`` is used as
scratch space: the trainer hands over a gradient it no longer needs.

config keys: ``learning_rate`` (required), ``momentum`` (default 0.9 for the
momentum rules), ``velocity`` (created on the first call, like ``w``).
"""

from __future__ import annotations

import math

import numpy as np


def sgd(w: np.ndarray, dw: np.ndarray, config: dict):
    """Vanilla SGD: w -= learning_rate * dw."""
    dw *= config["learning_rate"]
    w -= dw
    return w, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: dict):
    """Momentum: v = momentum * v - learning_rate * dw;  w += v."""
    v = config.get("velocity")
    if v is None:
        v = config["velocity"] = np.zeros_like(w)
    dw *= config["learning_rate"]
    v *= config.get("momentum", 0.9)
    v -= dw
    w += v
    return w, config


def nesterov_momentum(w: np.ndarray, dw: np.ndarray, config: dict):
    """Nesterov momentum in its look-ahead form (as in the CS231n notes):

    v = momentum * v - learning_rate * dw;  w += momentum * v - learning_rate * dw
    """
    v = config.get("velocity")
    if v is None:
        v = config["velocity"] = np.zeros_like(w)
    mu = config.get("momentum", 0.9)
    dw *= config["learning_rate"]
    v *= mu
    v -= dw
    w -= dw
    # w += mu * v without a temporary: reuse dw (already consumed) as scratch.
    np.multiply(v, mu, out=dw)
    w += dw
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
