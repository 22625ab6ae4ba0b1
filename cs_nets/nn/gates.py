"""The lecture's computational-graph gates as forward/backward pairs on scalars or arrays.

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward(dout, cache)``
returns the gradients of its inputs, upstream times local (CS231n lecture 4,
"patterns in gradient flow"):

    add:       distributes the gradient      d(x + y) -> (dout, dout)
    multiply:  swaps the inputs              d(x * y) -> (dout * y, dout * x)
    max:       routes it to the larger input d max(x, y) -> (dout, 0) if x > y else (0, dout)
    sigmoid:   scales by σ(1 - σ)            dσ(x) -> dout * σ(x)(1 - σ(x))

Inputs may be Python floats or NumPy arrays of one shape; nothing is done in place.
The layers (cs_nets.nn.layers) are these gates fused over whole matrices.
"""

import numpy as np


def add_forward(x, y):
    """out = x + y; cache: None (the local gradients are 1)."""
    return x + y, None


def add_backward(dout, cache):
    """(dx, dy) = (dout, dout)."""
    return dout, dout


def multiply_forward(x, y):
    """out = x * y; cache: (x, y)."""
    return x * y, (x, y)


def multiply_backward(dout, cache):
    """(dx, dy) = (dout * y, dout * x)."""
    x, y = cache
    return dout * y, dout * x


def max_forward(x, y):
    """out = max(x, y) elementwise; cache: where x won (ties go to x)."""
    x_wins = np.greater_equal(x, y)
    return np.where(x_wins, x, y)[()], x_wins


def max_backward(dout, cache):
    """(dx, dy): dout goes to the input that was larger, 0 to the other."""
    x_wins = cache
    zero = np.zeros_like(np.asarray(dout, dtype=float))
    return np.where(x_wins, dout, zero)[()], np.where(x_wins, zero, dout)[()]


def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)); cache: out."""
    out = 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
    return out[()], out


def sigmoid_backward(dout, cache):
    """dx = dout * σ(x) (1 - σ(x)), from the cached output σ(x)."""
    out = cache
    return (dout * out * (1.0 - out))[()]
