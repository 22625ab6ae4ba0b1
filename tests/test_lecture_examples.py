"""The worked examples of CS231n lectures 3 and 4, computed with our code."""

import math

import numpy as np
import pytest

from cs_nets.nn import gates
from cs_nets.nn.activations import ACTIVATIONS
from cs_nets.nn.gradcheck import numerical_gradient
from cs_nets.nn.layers import affine_backward, affine_forward
from cs_nets.nn.losses import softmax_loss, svm_loss

# Lecture 3: scores of three images (columns: cat, car, frog images; rows: classes)
LECTURE3_SCORES = np.array([
    [3.2, 5.1, -1.7],   # cat image
    [1.3, 4.9, 2.0],    # car image
    [2.2, 2.5, -3.1],   # frog image
])
LECTURE3_LABELS = np.array([0, 1, 2])


def test_add_multiply_circuit():
    """f(x, y, z) = (x + y) z at (-2, 5, -4): f = -12, grads (-4, -4, 3), through our gates."""
    x, y, z = -2.0, 5.0, -4.0
    q, add_cache = gates.add_forward(x, y)
    f, mul_cache = gates.multiply_forward(q, z)
    grad_q, grad_z = gates.multiply_backward(1.0, mul_cache)   # multiply swaps its inputs
    grad_x, grad_y = gates.add_backward(grad_q, add_cache)     # add distributes
    assert (q, f) == (3.0, -12.0)
    assert (grad_x, grad_y, grad_z) == (-4.0, -4.0, 3.0)

    v = np.array([x, y, z])
    numeric, _ = numerical_gradient(lambda: (v[0] + v[1]) * v[2], v)
    np.testing.assert_allclose(numeric, [grad_x, grad_y, grad_z], rtol=1e-9)


def test_max_gate_routes_the_gradient():
    """max(x, y) at (4, 2) and (1, 3): the whole upstream gradient goes to the larger input."""
    out, cache = gates.max_forward(4.0, 2.0)
    assert out == 4.0 and gates.max_backward(2.0, cache) == (2.0, 0.0)
    out, cache = gates.max_forward(np.array([1.0, 5.0]), np.array([3.0, 2.0]))
    dx, dy = gates.max_backward(np.array([10.0, 20.0]), cache)
    np.testing.assert_array_equal(out, [3.0, 5.0])
    np.testing.assert_array_equal(dx, [0.0, 20.0])
    np.testing.assert_array_equal(dy, [10.0, 0.0])


def test_sigmoid_neuron_flat_backprop():
    """f = σ(w0 x0 + w1 x1 + w2), w = (2, -3, -3), x = (-1, -2), as the 'Flat Backprop' slide, gate by gate."""
    w0, w1, w2, x0, x1 = 2.0, -3.0, -3.0, -1.0, -2.0
    # forward pass
    s0, c0 = gates.multiply_forward(w0, x0)
    s1, c1 = gates.multiply_forward(w1, x1)
    s2, c2 = gates.add_forward(s0, s1)
    s3, c3 = gates.add_forward(s2, w2)
    L, c4 = gates.sigmoid_forward(s3)
    # backward pass: the same gates in reverse
    grad_s3 = gates.sigmoid_backward(1.0, c4)
    grad_s2, grad_w2 = gates.add_backward(grad_s3, c3)
    grad_s0, grad_s1 = gates.add_backward(grad_s2, c2)
    grad_w1, grad_x1 = gates.multiply_backward(grad_s1, c1)
    grad_w0, grad_x0 = gates.multiply_backward(grad_s0, c0)
    assert L == pytest.approx(0.73, abs=0.005)
    assert (grad_w0, grad_w1, grad_w2) == pytest.approx((-0.20, -0.39, 0.20), abs=0.005)
    assert (grad_x0, grad_x1) == pytest.approx((0.39, -0.59), abs=0.005)

    v = np.array([w0, w1, w2, x0, x1])
    numeric, _ = numerical_gradient(lambda: 1 / (1 + math.exp(-(v[0] * v[3] + v[1] * v[4] + v[2]))), v)
    np.testing.assert_allclose(numeric, [grad_w0, grad_w1, grad_w2, grad_x0, grad_x1], rtol=1e-7)


def test_sigmoid_neuron_with_our_layers():
    """Same neuron as an affine pair followed by our sigmoid pair."""
    x = np.array([[-1.0, -2.0]])     # (N=1, D=2)
    w = np.array([[2.0], [-3.0]])    # (D, 1)
    b = np.array([-3.0])             # w2 acts as the bias
    forward, backward = ACTIVATIONS["sigmoid"]
    z, affine_cache = affine_forward(x, w, b)
    f, sigmoid_cache = forward(z)
    dz = backward(np.ones_like(f), sigmoid_cache)
    dx, dw, db = affine_backward(dz, affine_cache)
    assert f[0, 0] == pytest.approx(0.7311, abs=1e-4)
    assert dz[0, 0] == pytest.approx(0.1966, abs=1e-4)   # σ(1)(1 - σ(1))
    np.testing.assert_allclose(dw.ravel(), [-0.197, -0.393], atol=1e-3)
    np.testing.assert_allclose(db, [0.197], atol=1e-3)
    np.testing.assert_allclose(dx.ravel(), [0.393, -0.590], atol=1e-3)

    params = np.array([2.0, -3.0, -3.0])
    numeric, _ = numerical_gradient(
        lambda: float(forward(affine_forward(x, params[:2, None], params[2:])[0])[0][0, 0]), params
    )
    np.testing.assert_allclose(numeric, [dw[0, 0], dw[1, 0], db[0]], rtol=1e-8)


def test_vectorized_example_norm_of_wx():
    """f(x, W) = ||W x||², W = [[0.1, 0.5], [-0.3, 0.8]], x = (0.2, 0.4)."""
    W = np.array([[0.1, 0.5], [-0.3, 0.8]])
    x = np.array([0.2, 0.4])
    # q = W x as an affine layer on the row vector x: q_row = x_row @ W.T
    q, cache = affine_forward(x[None, :], W.T, np.zeros(2))
    f = float(np.sum(q * q))
    grad_q = 2 * q                       # local grad of Σ q²
    dx, dWT, _ = affine_backward(grad_q, cache)
    grad_W, grad_x = dWT.T, dx.ravel()
    np.testing.assert_allclose(q.ravel(), [0.22, 0.26])
    assert f == pytest.approx(0.116)
    np.testing.assert_allclose(grad_W, 2 * np.outer(q.ravel(), x))   # 2 q xᵀ
    np.testing.assert_allclose(grad_W, [[0.088, 0.176], [0.104, 0.208]])
    np.testing.assert_allclose(grad_x, 2 * W.T @ q.ravel())           # 2 Wᵀ q
    np.testing.assert_allclose(grad_x, [-0.112, 0.636])

    numeric_W, _ = numerical_gradient(lambda: float(np.sum((W @ x) ** 2)), W)
    numeric_x, _ = numerical_gradient(lambda: float(np.sum((W @ x) ** 2)), x)
    np.testing.assert_allclose(numeric_W, grad_W, rtol=1e-8)
    np.testing.assert_allclose(numeric_x, grad_x, rtol=1e-8)


def test_lecture3_svm_losses():
    """Per-image hinge losses 2.9, 0, 12.9; mean 5.27."""
    per_image = [svm_loss(LECTURE3_SCORES[i:i + 1], LECTURE3_LABELS[i:i + 1])[0] for i in range(3)]
    assert per_image == pytest.approx([2.9, 0.0, 12.9])
    assert svm_loss(LECTURE3_SCORES, LECTURE3_LABELS)[0] == pytest.approx(5.27, abs=0.005)


def test_lecture3_softmax_loss_of_the_cat():
    """Cat scores (3.2, 5.1, -1.7): probabilities (0.13, 0.87, 0.00), loss -log(0.13) = 2.04."""
    loss, dscores = softmax_loss(LECTURE3_SCORES[:1], LECTURE3_LABELS[:1])
    assert loss == pytest.approx(2.04, abs=0.005)
    probabilities = dscores[0] + [1, 0, 0]   # dL/ds = p - onehot(y)
    np.testing.assert_allclose(probabilities, [0.13, 0.87, 0.00], atol=0.005)
