"""Where a loss call puts its parameter gradients.

By default each gradient is a new array. An optimizer can instead hand the model
its own buffers and two coefficients, in BLAS gemm's convention:

    out[name] = alpha * dL/d(name) + beta * out[name]

so the backward product itself writes, for example, the momentum step
v = mu v - lr dW into the velocity (alpha=-lr, beta=mu; see cs_nets.optim), and
no gradient array is allocated or passed over again.

A model writes each parameter's gradient with one ``matmul`` or ``sum_rows`` call,
then may add terms to it (``add_l2``).
"""

from __future__ import annotations

import numpy as np

from cs_nets import blas


class GradientWriter:
    """Collects the gradients of one loss call in ``grads`` (keyed like the params).

    out: None (new arrays; alpha=1, beta=0) or a dict of arrays shaped like the params.
    """

    def __init__(self, out: dict | None = None, alpha: float = 1.0, beta: float = 0.0):
        if out is None and (alpha != 1 or beta != 0):
            raise ValueError("alpha and beta need out= buffers to act on")
        self.out, self.alpha, self.beta = out, float(alpha), float(beta)
        self.grads: dict[str, np.ndarray] = {}

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """grads[name] = a @ b: a weight's gradient Xᵀ dZ (pass X.T, a view). a: (D, N), b: (N, H)."""
        target = self._target(name, (a.shape[0], b.shape[1]), b.dtype)
        self.grads[name] = blas.gemm(a, b, target, self.alpha, self.beta)  # beta is 0 without out
        return self.grads[name]

    def sum_rows(self, name: str, dz: np.ndarray) -> np.ndarray:
        """grads[name] = dz.sum(axis=0): a bias's gradient. dz: (N, H) -> (H,)."""
        if self.out is None:
            self.grads[name] = dz.sum(axis=0)
        else:
            target = self._target(name, dz.shape[1:], dz.dtype)
            self.grads[name] = blas.scale_add(self.alpha, dz.sum(axis=0), self.beta, target)
        return self.grads[name]

    def add_l2(self, name: str, W: np.ndarray, reg: float) -> None:
        """grads[name] += 2 reg W, the gradient of reg * Σ W² (cs_nets.losses.l2_penalty)."""
        if reg != 0:
            blas.axpy(self.alpha * 2.0 * float(reg), W, self.grads[name])

    def _target(self, name, shape, dtype) -> np.ndarray:
        if self.out is None:
            return np.empty(shape, dtype)
        target = self.out[name]
        if target.shape != tuple(shape) or target.dtype != dtype:
            raise ValueError(f"out[{name!r}]: expected a {dtype} array of shape {tuple(shape)}, "
                             f"got {target.dtype} {target.shape}")
        return target
