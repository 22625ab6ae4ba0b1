"""Update rules and learning-rate schedules.

An update rule is the course's pure function

    next_w, config = rule(w, dw, config)

w: a parameter, dw: its gradient (same shape); config: the rule's settings
(learning_rate, momentum) and state (velocity). w and config are not modified: the
rule returns the next value of w and the next config.

The trainer computes exactly these updates through cs_nets.training._fused_step, which applies
them inside the backward pass without making a gradient array (tested equal to these
functions).
"""

from __future__ import annotations

import math

import numpy as np


def sgd(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """Vanilla stochastic gradient descent: next_w = w - learning_rate * dw.

    config: learning_rate (default 1e-2).
    """
    config = {"learning_rate": 1e-2, **(config or {})}
    lr = float(config["learning_rate"])  # a NumPy float64 would upcast a float32 w
    return w - lr * dw, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """SGD with momentum: the velocity v keeps a running sum of past steps.

        v = momentum * v - learning_rate * dw
        next_w = w + v

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
    """
    config = {"learning_rate": 1e-2, "momentum": 0.9, **(config or {})}
    lr, mu = float(config["learning_rate"]), float(config["momentum"])
    v = config.get("velocity")
    v = np.zeros_like(w) if v is None else v
    v = mu * v - lr * dw
    config["velocity"] = v
    return w + v, config


def nesterov_momentum(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """Nesterov momentum in the look-ahead form of the CS231n notes: w is the point where
    dw was taken, one momentum step ahead.

        v_prev = v
        v = momentum * v - learning_rate * dw
        next_w = w - momentum * v_prev + (1 + momentum) * v

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
    """
    config = {"learning_rate": 1e-2, "momentum": 0.9, **(config or {})}
    lr, mu = float(config["learning_rate"]), float(config["momentum"])
    v_prev = config.get("velocity")
    v_prev = np.zeros_like(w) if v_prev is None else v_prev
    v = mu * v_prev - lr * dw
    config["velocity"] = v
    return w - mu * v_prev + (1 + mu) * v, config


def update_rule(momentum: float, nesterov: bool):
    """The rule for an optim config: sgd (momentum 0), sgd_momentum or nesterov_momentum."""
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
