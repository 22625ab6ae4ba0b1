"""The trainer's fast path (private to cs_nets.training.trainer): each update rule applied as the
backward pass hands over each gradient, with no gradient array and few passes over memory.

For a reader the rules are the course's functions in cs_nets.nn.optim,
``w, config = rule(w, dw, config)``. This module computes the same updates (tested
equal to them to float64 rounding: tests/test_fast_path.py). A weight's gradient is
dW = A B + 2 reg W (A B = Xᵀ dZ, cs_nets.nn.grads_out), and BLAS gemm computes
C = alpha A B + beta C, so the product is written straight into the array the rule
updates, and what remains, L2 term included, takes at most three axpy passes (y += a x,
which OpenBLAS spreads over every core):

  rule       before the product   the product writes              after
  sgd        -                    W = (1 - 2 lr reg) W - lr AB    -
  momentum   -                    v = mu v - lr AB                v -= 2 lr reg W;  W += v
  nesterov   W -= mu v            v = mu (1 - 2 lr reg) v - lr AB v -= 2 lr reg W;  W += (1 + mu) v

Nesterov is the course's look-ahead form, next_w = w - mu v_prev + (1 + mu) v with
v = mu v_prev - lr dW: the first pass applies -mu v_prev while v_prev is still there,
and the L2 term of the old W = (W - mu v_prev) + mu v_prev is split between the
product's beta and the axpy. (Where reg = 0 the L2 passes are skipped.) Single-core
alternatives with fewer passes (BLAS axpby, or rotm updating W and v in one pass) made
2-thread epochs slower: after the threaded product they ran at a fraction of their
speed in isolation. Biases, and gradients a model computes itself (``put``), are small:
they go through the course's rule as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cs_nets.errors import ArgumentError
from cs_nets.nn.grads_out import check_weight_shapes
from cs_nets.nn.optim import sgd, sgd_momentum, update_rule
from cs_nets.training import _blas as blas


class FusedStep:
    """Updates ``params`` in place as a model's loss call hands over each gradient.

        step = FusedStep(model.params, momentum=0.9, nesterov=False)
        loss, _ = model.loss(X, y, grads_out=step.begin(learning_rate))  # the update happens here
        step.end()                                      # every parameter was updated once

    params: the model's dict of arrays (updated in place); momentum, nesterov as in
    OptimConfig (momentum 0: plain SGD). ``configs[name]`` is each parameter's config
    for the course rule (learning_rate, momentum, velocity).
    """

    def __init__(self, params: dict, momentum: float = 0.0, nesterov: bool = False):
        self.params = params
        self.grads: dict = {}  # what the model returns: no gradient arrays, each became an update
        self.rule = update_rule(momentum, nesterov)
        self.momentum = float(momentum)
        self.configs: dict[str, dict[str, Any]] = {
            name: {"learning_rate": 0.0, "momentum": self.momentum} for name in params}
        if self.rule is not sgd:
            for name, p in params.items():
                self.configs[name]["velocity"] = np.zeros_like(p)
        self.learning_rate = 0.0
        self._updated: set[str] = set()

    def buffers(self) -> dict:
        """{name: {"velocity": array}} the rule's live state per parameter ({} per name for SGD)."""
        return {name: {"velocity": c["velocity"]} if "velocity" in c else {} for name, c in self.configs.items()}

    def load_buffers(self, saved: dict) -> None:
        """Copy saved buffers (as ``buffers()`` gives them) into the live ones, e.g. to resume."""
        for name, live in self.buffers().items():
            for key, array in live.items():
                array[...] = saved[name][key]

    def begin(self, learning_rate: float) -> FusedStep:
        """Start one step at this learning rate; returns the destination for model.loss."""
        self.learning_rate = float(learning_rate)
        for config in self.configs.values():
            config["learning_rate"] = self.learning_rate
        self._updated.clear()
        return self

    def end(self) -> None:
        """Raise ArgumentError unless the loss call handed over every parameter's gradient."""
        missing = [name for name in self.params if name not in self._updated]
        if missing:
            raise ArgumentError(f"model.loss handed over no gradient for {', '.join(missing)}")

    # ---- the destination interface (cs_nets.nn.grads_out)

    def weight(self, name: str, a: np.ndarray, b: np.ndarray, W: np.ndarray, reg: float = 0.0) -> None:
        """Update W by the rule for dW = a @ b + 2 reg W, in place. a: (D, N), b: (N, H), W: (D, H)."""
        self._check(name, W)
        check_weight_shapes(name, a, b, W)
        lr, mu, decay = self.learning_rate, self.momentum, 2.0 * self.learning_rate * float(reg)
        if self.rule is sgd:
            blas.gemm(a, b, W, -lr, 1.0 - decay)  # W = W - lr (AB + 2 reg W)
            return
        v = self.configs[name]["velocity"]
        if self.rule is sgd_momentum:
            blas.gemm(a, b, v, -lr, mu)          # v = mu v - lr AB
            if decay:
                blas.axpy(-decay, W, v)          # v -= 2 lr reg W
            blas.axpy(1.0, v, W)                 # W += v
        else:  # nesterov_momentum
            blas.axpy(-mu, v, W)                 # W -= mu v_prev (W is now W - mu v_prev: call it Wa)
            blas.gemm(a, b, v, -lr, mu * (1.0 - decay))  # v = mu v_prev - lr AB - 2 lr reg mu v_prev
            if decay:
                blas.axpy(-decay, W, v)          # ... - 2 lr reg Wa: the L2 term of the old W = Wa + mu v_prev
            blas.axpy(1.0 + mu, v, W)            # W = W - mu v_prev + (1 + mu) v

    def bias(self, name: str, dz: np.ndarray) -> None:
        """Update the bias by the rule for db = dz.sum(axis=0). dz: (N, H)."""
        self.put(name, dz.sum(axis=0))

    def put(self, name: str, dw: np.ndarray) -> None:
        """Update the parameter by the course rule for a gradient dw computed elsewhere."""
        self._check(name, self.params.get(name))
        w = self.params[name]
        if dw.shape != w.shape:
            raise ArgumentError(f"{name}: expected a gradient of shape {w.shape}, got {dw.shape}")
        next_w, self.configs[name] = self.rule(w, dw, self.configs[name])
        w[...] = next_w

    def _check(self, name, w):
        if name not in self.params or w is not self.params[name]:
            raise ArgumentError(f"{name}: not one of the parameters being trained ({', '.join(self.params)})")
        if name in self._updated:
            raise ArgumentError(f"{name}: its gradient was handed over twice in one step")
        self._updated.add(name)
