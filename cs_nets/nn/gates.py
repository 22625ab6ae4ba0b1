"""The lecture's computational-graph gates as forward/backward pairs on scalars or arrays.

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward(dout, cache)``
returns the gradients of its inputs, upstream times local (CS231n lecture 4,
"patterns in gradient flow"):

    add:       distributes the gradient      d(x + y) -> (dout, dout)
    multiply:  swaps the inputs              d(x * y) -> (dout * y, dout * x)
    max:       routes it to the larger input d max(x, y) -> (dout, 0) if x > y else (0, dout)
    sigmoid:   scales by σ(1 - σ)            dσ(x) -> dout * σ(x)(1 - σ(x))

and the other operations the lecture's examples use: subtract, divide, power (by a
constant), exp, log, negate, tanh, relu, matmul, sum, square.

Inputs may be Python floats or NumPy arrays; nothing is done in place. Two-input
gates return gradients shaped like their output: where NumPy broadcast an input,
cs_nets.nn.graph sums the gradient back to the input's shape.
These pairs are the nodes of cs_nets.nn.graph. The layers (cs_nets.nn.layers) are
written separately, whole-matrix and in place where it is safe; tests/test_graph.py
holds each layer equal to its composition of these gates (affine = matmul + add,
relu = max with 0, ...).
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


def subtract_forward(x, y):
    """out = x - y; cache: None."""
    return x - y, None


def subtract_backward(dout, cache):
    """(dx, dy) = (dout, -dout)."""
    return dout, -dout


def divide_forward(x, y):
    """out = x / y; cache: (x, y)."""
    return x / y, (x, y)


def divide_backward(dout, cache):
    """(dx, dy) = (dout / y, -dout x / y²)."""
    x, y = cache
    return dout / y, -dout * x / (y * y)


def power_forward(x, p):
    """out = x ** p for a constant number p; cache: (x, p)."""
    return x ** p, (x, p)


def power_backward(dout, cache):
    """dx = dout * p x^(p - 1)."""
    x, p = cache
    return dout * p * x ** (p - 1)


def square_forward(x):
    """out = x²; cache: x."""
    return x * x, x


def square_backward(dout, cache):
    """dx = dout * 2x."""
    return dout * 2.0 * cache


def exp_forward(x):
    """out = e^x; cache: out (the local gradient of e^x is e^x)."""
    out = np.exp(x)
    return out, out


def exp_backward(dout, cache):
    """dx = dout * e^x."""
    return dout * cache


def log_forward(x):
    """out = ln x; cache: x."""
    return np.log(x), x


def log_backward(dout, cache):
    """dx = dout / x."""
    return dout / cache


def negate_forward(x):
    """out = -x; cache: None."""
    return -x, None


def negate_backward(dout, cache):
    """dx = -dout."""
    return -dout


def tanh_forward(x):
    """out = tanh x; cache: out."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dx = dout * (1 - tanh² x)."""
    return dout * (1.0 - cache * cache)


def relu_forward(x):
    """out = max(x, 0): the max gate with one input fixed at 0; cache: the max gate's."""
    return max_forward(x, 0.0)


def relu_backward(dout, cache):
    """dx: the max gate routes dout to x where x won, 0 elsewhere."""
    dx, _ = max_backward(dout, cache)
    return dx


def matmul_forward(x, y):
    """out = x @ y for 1-D or 2-D x, y (a 1-D operand is a vector, as in NumPy); cache: (x, y).

    (N, D) @ (D, M) -> (N, M); (M, D) @ (D,) -> (M,); (D,) @ (D, M) -> (M,); (D,) @ (D,) -> ().
    """
    return np.matmul(x, y), (x, y)


def matmul_backward(dout, cache):
    """(dx, dy) = (dout @ yᵀ, xᵀ @ dout), with a 1-D operand as a row or column vector."""
    x, y = cache
    x2 = x[None, :] if x.ndim == 1 else x   # a vector on the left is a row
    y2 = y[:, None] if y.ndim == 1 else y   # a vector on the right is a column
    d2 = np.reshape(dout, (x2.shape[0], y2.shape[1]))
    return (d2 @ y2.T).reshape(x.shape), (x2.T @ d2).reshape(y.shape)


def sum_forward(x):
    """out = Σ x over every entry (a scalar); cache: x's shape."""
    return np.sum(x), np.shape(x)


def sum_backward(dout, cache):
    """dx = dout copied to every entry: the sum is an add gate, it distributes."""
    return np.full(cache, dout, dtype=float)
