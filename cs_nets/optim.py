"""Update rules and learning-rate schedules.

An update rule moves a parameter w given its gradient dw. So that no gradient array
is allocated and the weights are passed over as few times as possible, a step comes
in two halves around the backward pass (cs_nets.gradients):

    alpha, beta = rule.gradient_form(lr)   # the model writes buffer = alpha * dw + beta * buffer
    rule.finish(w, state)                  # the rule completes the step, in place

For momentum the buffer is the velocity itself: the backward product computes
v = mu v - lr dw in one BLAS call (alpha=-lr, beta=mu), and finish is one
multi-threaded pass w += v. ``step(rule, w, dw, state, lr)`` does both halves for a
gradient computed beforehand: the course's ``rule(w, dw, config)``, for reading and tests.

state: one dict per parameter, from ``rule.new_state(w)``; state["buffer"] is where
the model writes.
"""

from __future__ import annotations

import math

import numpy as np

from cs_nets import blas


class SGD:
    """Vanilla SGD: w -= learning_rate * dw.  buffer = -lr dw, then w += buffer."""

    def new_state(self, w: np.ndarray) -> dict:
        return {"buffer": np.empty_like(w)}  # beta = 0: its old content is never read

    def gradient_form(self, lr: float) -> tuple[float, float]:
        return -float(lr), 0.0

    def finish(self, w: np.ndarray, state: dict) -> None:
        blas.axpy(1.0, state["buffer"], w)


class Momentum:
    """Momentum: v = momentum * v - learning_rate * dw;  w += v.  The buffer is v."""

    def __init__(self, momentum: float = 0.9):
        self.momentum = float(momentum)

    def new_state(self, w: np.ndarray) -> dict:
        return {"buffer": np.zeros_like(w)}

    def gradient_form(self, lr: float) -> tuple[float, float]:
        return -float(lr), self.momentum

    def finish(self, w: np.ndarray, state: dict) -> None:
        blas.axpy(1.0, state["buffer"], w)


class NesterovMomentum:
    """Nesterov momentum in its look-ahead form (as in the CS231n notes):

    v = momentum * v - learning_rate * dw;  w += momentum * v - learning_rate * dw

    buffer = -lr dw (it is needed twice), state["velocity"] = v.
    """

    def __init__(self, momentum: float = 0.9):
        self.momentum = float(momentum)

    def new_state(self, w: np.ndarray) -> dict:
        return {"buffer": np.empty_like(w), "velocity": np.zeros_like(w)}

    def gradient_form(self, lr: float) -> tuple[float, float]:
        return -float(lr), 0.0

    def finish(self, w: np.ndarray, state: dict) -> None:
        lr_dw, v = state["buffer"], state["velocity"]
        blas.scale_add(1.0, lr_dw, self.momentum, v)  # v = mu v - lr dw
        blas.axpy(self.momentum, v, w)
        blas.axpy(1.0, lr_dw, w)


def step(rule, w: np.ndarray, dw: np.ndarray, state: dict, lr: float) -> np.ndarray:
    """One whole update of w (in place) for a gradient dw computed beforehand; returns w."""
    alpha, beta = rule.gradient_form(lr)
    blas.scale_add(alpha, dw, beta, state["buffer"])
    rule.finish(w, state)
    return w


def update_rule(momentum: float, nesterov: bool):
    """The rule for an optim config: plain SGD, momentum or Nesterov momentum."""
    if momentum == 0.0:
        return SGD()
    return NesterovMomentum(momentum) if nesterov else Momentum(momentum)


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
