"""Elementwise activation functions as forward/backward pairs.

Every pair has the same shape of API so a network can switch activations by name:

    a, cache = forward(z, out=None)     z: (N, H) pre-activation -> a: (N, H)
    dz = backward(da, cache, out=None)  da: (N, H) upstream grad -> dz: (N, H)

``out`` is NumPy's ``out=``: pass ``out=z`` to compute the activation in place
(``z`` is then overwritten) and ``out=da`` to turn the upstream gradient into the
downstream one without allocating. All pairs except gelu cache only the *output*
``a`` because their local gradient can be written in terms of it (relu: a > 0,
sigmoid: a(1 - a), tanh: 1 - a², ...), which is what makes the in-place forward safe.

dtype is preserved: constants are Python floats, so float32 stays float32.

Maxout (Goodfellow et al. 2013; the last activation on the lecture's slide) is not
elementwise: a unit is max(w1ᵀx + b1, ..., wkᵀx + bk) over k affine "pieces", so its
layer's affine part is k times wider and maxout_forward narrows (N, k*H) to (N, H).
It is a model's ``activation`` like the others (ACTIVATION_NAMES), with its own pair.
"""

import math

import numpy as np

from cs_nets.errors import ArgumentError

LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
_GELU_K = math.sqrt(2.0 / math.pi)  # tanh-form GELU constant
_GELU_C = 0.044715


def relu_forward(z, out=None):
    """a = max(z, 0). z: (N, H) -> (a, cache=a)."""
    a = np.maximum(z, 0, out=out)
    return a, a


def relu_backward(da, cache, out=None):
    """dz = da * [a > 0]: a mask multiply (in place when out=da)."""
    return np.multiply(da, cache > 0, out=out)


def leaky_relu_forward(z, out=None):
    """a = z if z > 0 else 0.01 z, i.e. max(z, 0.01 z) since the slope is < 1."""
    a = np.maximum(z, LEAKY_SLOPE * z, out=out)
    return a, a


def leaky_relu_backward(da, cache, out=None):
    """dz = da * (1 if a > 0 else 0.01); a > 0 exactly where z > 0."""
    if out is None:
        out = da.copy()
    elif out is not da:
        out[...] = da
    np.multiply(out, LEAKY_SLOPE, out=out, where=cache <= 0)
    return out


def sigmoid_forward(z, out=None):
    """a = 1 / (1 + e^-z), computed as (1 + tanh(z / 2)) / 2 so it never overflows."""
    a = np.multiply(z, 0.5, out=out)
    np.tanh(a, out=a)
    a += 1
    a *= 0.5
    return a, a


def sigmoid_backward(da, cache, out=None):
    """dz = da * a (1 - a)."""
    local = np.subtract(1, cache)
    local *= cache
    return np.multiply(da, local, out=out)


def tanh_forward(z, out=None):
    """a = tanh(z)."""
    a = np.tanh(z, out=out)
    return a, a


def tanh_backward(da, cache, out=None):
    """dz = da * (1 - a²)."""
    local = np.multiply(cache, cache)
    np.subtract(1, local, out=local)
    return np.multiply(da, local, out=out)


def elu_forward(z, out=None):
    """a = z if z > 0 else alpha (e^z - 1), written as max(z, 0) + alpha (e^min(z, 0) - 1)."""
    negative_part = np.expm1(np.minimum(z, 0))  # min() first: e^z never overflows
    if ELU_ALPHA != 1.0:
        negative_part *= ELU_ALPHA
    a = np.maximum(z, 0, out=out)
    a += negative_part
    return a, a


def elu_backward(da, cache, out=None):
    """dz = da * (1 if a > 0 else a + alpha), since d/dz alpha (e^z - 1) = alpha e^z = a + alpha."""
    local = np.where(cache > 0, 1, cache + ELU_ALPHA)
    return np.multiply(da, local, out=out)


def gelu_forward(z, out=None):
    """a = 0.5 z (1 + tanh(k (z + 0.044715 z³))), k = √(2/π). cache = (z, tanh term).

    The local gradient needs z itself, so z is copied first when computing in place.
    """
    if out is z:
        z = z.copy()
    t = z * z
    t *= _GELU_C
    t += 1
    t *= z
    t *= _GELU_K
    np.tanh(t, out=t)  # t = tanh(k (z + c z³))
    a = np.add(t, 1, out=out)
    a *= z
    a *= 0.5
    return a, (z, t)


def gelu_backward(da, cache, out=None):
    """dz = da * [0.5 (1 + t) + 0.5 z (1 - t²) k (1 + 3c z²)] with t the cached tanh term."""
    z, t = cache
    inner_grad = z * z
    inner_grad *= 3 * _GELU_C
    inner_grad += 1
    inner_grad *= _GELU_K  # d/dz of k (z + c z³)
    tanh_grad = np.multiply(t, t)
    np.subtract(1, tanh_grad, out=tanh_grad)  # 1 - t²
    local = tanh_grad * inner_grad
    local *= z
    local += t
    local += 1
    local *= 0.5
    return np.multiply(da, local, out=out)


def maxout_forward(z, pieces):
    """a = the max over k = pieces of the column blocks of z. z: (N, k*H) -> (a: (N, H), cache).

    Piece j of unit h is column j*H + h: z[:, j*H:(j+1)*H] is the j-th affine map
    wjᵀx + bj of every unit. cache: (argmax piece per entry (N, H), z's shape); ties go to
    the first piece, as the max gate sends a tie to one input.
    """
    n, width = z.shape
    if pieces < 1 or width % pieces:
        raise ArgumentError(f"maxout: {width} columns do not split into {pieces} pieces")
    blocks = z.reshape(n, pieces, width // pieces)  # a view: (N, k, H)
    winner = blocks.argmax(axis=1)                  # (N, H)
    a = np.take_along_axis(blocks, winner[:, None, :], axis=1)[:, 0, :]
    return a, (winner, z.shape)


def maxout_backward(da, cache):
    """dz: da routed to each unit's winning piece, 0 to the others (the max gate). da: (N, H) -> (N, k*H)."""
    winner, shape = cache
    n, units = da.shape
    dz = np.zeros((n, shape[1] // units, units), dtype=da.dtype)
    np.put_along_axis(dz, winner[:, None, :], da[:, None, :], axis=1)
    return dz.reshape(shape)


MAXOUT = "maxout"
MAXOUT_PIECES = 2  # the default k

ACTIVATIONS = {  # the elementwise pairs, by name
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "elu": (elu_forward, elu_backward),
    "gelu": (gelu_forward, gelu_backward),
}

ACTIVATION_NAMES = (*ACTIVATIONS, MAXOUT)  # what a model's ``activation`` may be (cs_nets.registry.ACTIVATIONS)
