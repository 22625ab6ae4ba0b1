"""Where a loss call puts its parameter gradients.

A model hands over each parameter's gradient with one call on a destination:

    grads.weight(name, a, b, W, reg)   dL/dW = a @ b + 2 reg W   (data term, then the L2 term
                                       of reg * Σ W², cs_nets.nn.losses.l2_penalty)
    grads.bias(name, dz)               dL/db = dz.sum(axis=0)
    grads.put(name, dw)                any gradient the model computed itself

``Gradients`` (what a model uses when it is given none) keeps each as a new array in
``grads.grads``, keyed like the params. The trainer passes a destination of its own
that applies the update rule as each gradient arrives, updating the parameter in
place; so a model hands over a parameter's gradient only after its last use of that
parameter in the loss call (tests/test_update_contract.py breaks if one does not).
"""

from __future__ import annotations

import numpy as np

from cs_nets.errors import ArgumentError


class Gradients:
    """The gradients of one loss call as new arrays in ``grads`` (keyed like the params)."""

    def __init__(self):
        self.grads: dict[str, np.ndarray] = {}

    def weight(self, name: str, a: np.ndarray, b: np.ndarray, W: np.ndarray, reg: float = 0.0) -> np.ndarray:
        """grads[name] = a @ b + 2 reg W: a weight's gradient, e.g. Xᵀ dZ (pass X.T, a view).

        a: (D, N), b: (N, H), W: (D, H); reg: the L2 strength (0: no L2 term).
        """
        check_weight_shapes(name, a, b, W)
        reg = float(reg)  # a NumPy float64 would upcast a float32 gradient
        grad = np.matmul(a, b)
        if reg != 0:
            grad += (2.0 * reg) * W
        self.grads[name] = grad
        return grad

    def bias(self, name: str, dz: np.ndarray) -> np.ndarray:
        """grads[name] = dz.sum(axis=0): a bias's gradient. dz: (N, H) -> (H,)."""
        self.grads[name] = dz.sum(axis=0)
        return self.grads[name]

    def put(self, name: str, dw: np.ndarray) -> np.ndarray:
        """grads[name] = dw, a gradient the model computed itself (shaped like the parameter)."""
        self.grads[name] = dw
        return dw


def check_weight_shapes(name: str, a: np.ndarray, b: np.ndarray, W: np.ndarray) -> None:
    """Raise ArgumentError unless a @ b has W's shape."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or W.shape != (a.shape[0], b.shape[1]):
        raise ArgumentError(f"{name}: the gradient {a.shape} @ {b.shape} does not fit the weight's shape {W.shape}")
