"""Layer pairs: affine and every activation, values, gradients, in-place use, dtype."""

import math

import numpy as np
import pytest

from cs_nets.nn.activations import ACTIVATIONS
from cs_nets.nn.gradcheck import numerical_gradient, rel_error
from cs_nets.nn.layers import (
    activation_backward,
    activation_forward,
    affine_activation_backward,
    affine_activation_forward,
    affine_backward,
    affine_forward,
)

# Points away from 0, where relu / leaky_relu / elu have their kink.
Z = np.array([[-3.0, -1.5, -0.4, -0.05], [0.05, 0.3, 1.2, 4.0]])


def reference(name, z):
    """Each activation written the textbook way, in float64."""
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "elu":
        return np.where(z > 0, z, np.exp(z) - 1)
    if name == "gelu":
        return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    raise AssertionError(name)


def test_affine_forward_values():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    w = np.array([[1.0, 0.0, 2.0], [-1.0, 3.0, 0.5]])
    b = np.array([0.1, 0.2, 0.3])
    out, _ = affine_forward(x, w, b)
    np.testing.assert_allclose(out, [[-0.9, 6.2, 3.3], [1.1, -2.8, -0.2]])


def test_affine_backward_matches_numerical_gradient():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)

    def f():  # L = Σ out * dout has dL/dout = dout
        return float(np.sum(affine_forward(x, w, b)[0] * dout))

    for analytic, array in ((dx, x), (dw, w), (db, b)):
        numeric, _ = numerical_gradient(f, array)
        assert rel_error(analytic, numeric) < 1e-9
    no_dx, dw2, db2 = affine_backward(dout, cache, need_dx=False)
    assert no_dx is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_values(name):
    forward, _ = ACTIVATIONS[name]
    out, _ = forward(Z.copy())
    np.testing.assert_allclose(out, reference(name, Z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_numerical_derivative(name):
    forward, backward = ACTIVATIONS[name]
    dout = np.random.default_rng(1).standard_normal(Z.shape)
    _, cache = forward(Z.copy())
    dz = backward(dout, cache)
    h = 1e-6
    local = (reference(name, Z + h) - reference(name, Z - h)) / (2 * h)
    np.testing.assert_allclose(dz, dout * local, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_in_place_forward_and_backward_give_the_same_result(name):
    forward, backward = ACTIVATIONS[name]
    dout = np.random.default_rng(2).standard_normal(Z.shape)
    out, cache = forward(Z.copy())
    dz = backward(dout.copy(), cache)

    z = Z.copy()
    out_inplace, cache_inplace = forward(z, out=z)
    assert out_inplace is z
    da = dout.copy()
    dz_inplace = backward(da, cache_inplace, out=da)
    assert dz_inplace is da
    np.testing.assert_array_equal(out_inplace, out)
    np.testing.assert_array_equal(dz_inplace, dz)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_float32_stays_float32(name):
    forward, backward = ACTIVATIONS[name]
    z = Z.astype(np.float32)
    out, cache = forward(z)
    dz = backward(np.ones_like(z), cache)
    assert out.dtype == np.float32 and dz.dtype == np.float32
    np.testing.assert_allclose(out, reference(name, Z), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["sigmoid", "elu", "gelu", "tanh"])
def test_activations_do_not_overflow(name):
    forward, backward = ACTIVATIONS[name]
    z = np.array([[-1000.0, -90.0, 90.0, 1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        out, cache = forward(z.copy())
        dz = backward(np.ones_like(z), cache)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dz))


def test_relu_backward_is_a_mask():
    z = np.array([[-1.0, 2.0, 0.0, 3.0]])
    out, cache = activation_forward(z, "relu")
    np.testing.assert_array_equal(out, [[0, 2, 0, 3]])
    np.testing.assert_array_equal(activation_backward(np.full((1, 4), 5.0), cache), [[0, 5, 0, 5]])


def test_affine_activation_sandwich_matches_the_two_pairs():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 6)), rng.standard_normal(6)
    dout = rng.standard_normal((4, 6))
    out, cache = affine_activation_forward(x, w, b, "tanh")
    np.testing.assert_allclose(out, np.tanh(x @ w + b), rtol=1e-12)
    dx, dw, db = affine_activation_backward(dout, cache)
    dz = dout * (1 - out**2)
    np.testing.assert_allclose(dx, dz @ w.T, rtol=1e-12)
    np.testing.assert_allclose(dw, x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(db, dz.sum(axis=0), rtol=1e-12)
