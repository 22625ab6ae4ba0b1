"""cs_nets.nn.graph: the lecture's computational graph, checked against the lecture,
numerical gradients, the two models, and the layers written as compositions of gates."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cs_nets.errors import ArgumentError
from cs_nets.nn import graph as G
from cs_nets.nn.gradcheck import numerical_gradient, rel_error
from cs_nets.nn.layers import activation_forward, affine_forward
from cs_nets.nn.losses import softmax_loss, svm_loss
from cs_nets.nn.models import FullyConnectedNet, TwoLayerNet

# ---- the lecture's circuits


def test_add_multiply_circuit_matches_the_lecture():
    x, y, z = G.Input("x"), G.Input("y"), G.Input("z")
    f = G.Graph((x + y) * z)
    assert f.forward(x=-2.0, y=5.0, z=-4.0) == -12.0
    assert f.backward() == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert [n.gate for n in f.order] == ["input", "input", "add", "input", "multiply"]


def test_sigmoid_neuron_matches_the_lecture():
    w0, w1, w2, x0, x1 = (G.Input(n) for n in ("w0", "w1", "w2", "x0", "x1"))
    f = G.Graph(G.sigmoid(w0 * x0 + w1 * x1 + w2))
    assert f.forward(w0=2.0, w1=-3.0, w2=-3.0, x0=-1.0, x1=-2.0) == pytest.approx(0.73, abs=0.005)
    grads = f.backward()
    assert [grads[n] for n in ("w0", "w1", "w2")] == pytest.approx([-0.20, -0.39, 0.20], abs=0.005)
    assert [grads[n] for n in ("x0", "x1")] == pytest.approx([0.39, -0.59], abs=0.005)


def test_gate_patterns_circuit():
    """2 (x y + max(z, w)) at x=3, y=-4, z=2, w=-1: multiply swaps, add distributes, max routes."""
    x, y, z, w = (G.Input(n) for n in "xyzw")
    f = G.Graph(2.0 * (x * y + G.maximum(z, w)))
    assert f.forward(x=3.0, y=-4.0, z=2.0, w=-1.0) == -20.0
    assert f.backward() == {"x": -8.0, "y": 6.0, "z": 2.0, "w": 0.0}


def test_vectorized_example_matches_the_lecture():
    W, x = G.Input("W"), G.Input("x")
    q = W @ x
    f = G.Graph(G.sum_all(q ** 2))
    assert f.forward(W=[[0.1, 0.5], [-0.3, 0.8]], x=[0.2, 0.4]) == pytest.approx(0.116)
    np.testing.assert_allclose(q.value, [0.22, 0.26])
    grads = f.backward()
    np.testing.assert_allclose(q.grad, [0.44, 0.52])
    np.testing.assert_allclose(grads["W"], [[0.088, 0.176], [0.104, 0.208]])
    np.testing.assert_allclose(grads["x"], [-0.112, 0.636])


def test_a_value_used_twice_gets_the_sum_of_its_gradients():
    """f = x x + x: the copy gate adds 2x (from the multiply) and 1 (from the add)."""
    x = G.Input("x")
    f = G.Graph(x * x + x)
    assert f.forward(x=3.0) == 12.0
    assert f.backward() == {"x": 7.0}
    assert f.uses(x) == 3


def test_broadcast_input_gradient_is_summed_back_to_its_shape():
    """b (3,) added to every row of a (2, 3) array was copied twice: its gradient is the column sum."""
    a, b = G.Input("a"), G.Input("b")
    f = G.Graph(G.sum_all((a + b) * np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])))
    f.forward(a=np.zeros((2, 3)), b=np.zeros(3))
    grads = f.backward()
    np.testing.assert_array_equal(grads["b"], [5.0, 7.0, 9.0])
    assert grads["a"].shape == (2, 3)


def test_backward_can_run_again_after_a_new_forward():
    x = G.Input("x")
    f = G.Graph(G.square(x))
    f.forward(x=3.0)
    assert f.backward() == {"x": 6.0}
    f.forward(x=-1.0)
    assert f.backward() == {"x": -2.0}


def test_bad_shapes_and_inputs_are_argument_errors():
    W, x = G.Input("W"), G.Input("x")
    f = G.Graph(W @ x)
    with pytest.raises(ArgumentError, match="matmul: cannot combine shapes"):
        f.forward(W=np.ones((2, 3)), x=np.ones(2))
    with pytest.raises(ArgumentError, match="expected values for"):
        f.forward(W=np.ones((2, 3)))
    with pytest.raises(ArgumentError, match="exponent must be a constant"):
        G.power(x, x)
    with pytest.raises(ArgumentError, match="activation: expected one of"):
        G.activation(x, "nope")


# ---- property tests: random expressions against numerical gradients

NAMES = ("a", "b", "c")
SHAPE = (3,)


def _unary(e):
    return st.sampled_from([
        G.tanh, G.sigmoid, G.relu, lambda v: -v, lambda v: G.exp(G.tanh(v)),
        lambda v: G.log(1.0 + G.square(v)), lambda v: v ** 3, lambda v: G.activation(v, "elu"),
    ]).map(lambda fn: fn(e))


def _binary(pair):
    left, right = pair
    return st.sampled_from([
        lambda p, q: p + q, lambda p, q: p - q, lambda p, q: p * q, G.maximum,
        lambda p, q: p / (1.0 + G.square(q)), lambda p, q: G.matmul(np.eye(3)[::-1] + 0.5, p + np.zeros(3)) * q,
    ]).map(lambda fn: fn(left, right))


_inputs = {name: G.Input(name) for name in NAMES}
expressions = st.recursive(
    st.sampled_from(NAMES).map(lambda n: _inputs[n]) | st.floats(-2, 2).map(lambda v: G.Const(np.float64(v))),
    lambda sub: st.one_of(sub.flatmap(_unary), st.tuples(sub, sub).flatmap(_binary)),
    max_leaves=8,
)
input_values = st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=9, max_size=9)


def _kink_distance(f):
    """Smallest distance of any max / relu / elu input from the point where its slope jumps."""
    distances = [np.inf]
    for node in f.order:
        if node.gate == "max":
            distances.append(np.min(np.abs(np.asarray(node.inputs[0].value) - node.inputs[1].value)))
        elif node.gate in ("relu", "elu"):
            distances.append(np.min(np.abs(node.inputs[0].value)))
    return float(np.min(distances))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions, raw=input_values)
def test_random_expressions_match_numerical_gradients(expr, raw):
    f = G.Graph(G.sum_all(expr * np.ones(SHAPE)))  # vector-valued expressions, summed to a scalar
    values = {name: np.array(raw[3 * i:3 * i + 3]) for i, name in enumerate(NAMES)}
    values = {name: v for name, v in values.items() if name in f.inputs}
    assume(values)
    f.forward(**values)
    assume(_kink_distance(f) > 1e-3)  # a ±h step must not cross a kink
    grads = f.backward()
    for name, x in values.items():
        numeric, _ = numerical_gradient(lambda: f.forward(**values), x)
        assert grads[name].shape == x.shape
        # relative to the largest entry; absolute where the whole gradient is ~0 (finite differences give ~1e-11)
        assert rel_error(grads[name], numeric) < 1e-6 or np.abs(grads[name] - numeric).max() < 1e-8


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["add", "subtract", "multiply", "divide", "max"]))
def test_broadcasting_gates_match_numerical_gradients(seed, gate):
    """A (2, 3) array with a (3,) row and a scalar: gradients summed back to each shape."""
    rng = np.random.default_rng(seed)
    values = {"m": rng.standard_normal((2, 3)), "r": rng.uniform(1, 2, 3), "s": np.array(rng.uniform(1, 2))}
    m, r, s = (G.Input(n) for n in "mrs")
    f = G.Graph(G.sum_all(G.Gate(gate, G.Gate(gate, m, r), s) * rng.standard_normal((2, 3))))
    f.forward(**values)
    assume(_kink_distance(f) > 1e-3)
    grads = f.backward()
    for name, x in values.items():
        numeric, _ = numerical_gradient(lambda: f.forward(**values), x)
        assert np.shape(grads[name]) == x.shape
        assert rel_error(grads[name], numeric) < 1e-7 or np.abs(grads[name] - numeric).max() < 1e-8


# ---- three ways to backprop one net, one answer


@pytest.mark.parametrize("loss", ["softmax", "svm"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_graph_flat_and_modular_two_layer_nets_agree(loss, act):
    rng = np.random.default_rng(3)
    N, D, H, C, reg = 7, 5, 6, 4, 0.1
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    flat = TwoLayerNet(D, C, dtype="float64", seed=1, hidden_dim=H, activation=act, loss=loss, reg=reg)
    modular = FullyConnectedNet(D, C, dtype="float64", seed=2, hidden_dims=[H], activation=act, loss=loss, reg=reg)
    for name in ("b1", "b2"):
        flat.params[name][...] = 0.1 * rng.standard_normal(flat.params[name].shape)
    modular.load_params(flat.params)

    W1, b1, W2, b2 = (G.Input(n) for n in ("W1", "b1", "W2", "b2"))
    scores = G.affine(G.activation(G.affine(X, W1, b1), act), W2, b2)
    data_loss = G.softmax_loss(scores, y) if loss == "softmax" else G.svm_loss(scores, y)
    net = G.Graph(data_loss + reg * (G.sum_all(G.square(W1)) + G.sum_all(G.square(W2))))
    graph_loss = net.forward(**flat.params)
    graph_grads = net.backward()

    flat_loss, flat_grads = flat.loss(X, y)
    modular_loss, modular_grads = modular.loss(X, y)
    assert graph_loss == pytest.approx(flat_loss, abs=1e-10)
    assert modular_loss == pytest.approx(flat_loss, abs=1e-10)
    for name in flat.params:
        np.testing.assert_allclose(graph_grads[name], flat_grads[name], rtol=0, atol=1e-10)
        np.testing.assert_allclose(modular_grads[name], flat_grads[name], rtol=0, atol=1e-10)


# ---- the layers are the gates the lecture draws


def _both(build, **values):
    """(value, gradients) of sum(build(*inputs) * R) for a fixed random R: the same upstream for each side."""
    inputs = [G.Input(n) for n in values]
    out = build(*inputs)
    f = G.Graph(out)
    f.forward(**values)
    upstream = np.random.default_rng(7).standard_normal(np.shape(out.value))
    f = G.Graph(G.sum_all(out * upstream))
    f.forward(**values)
    return out.value, f.backward()


def _assert_same(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-12)
    for name in a[1]:
        np.testing.assert_allclose(a[1][name], b[1][name], rtol=1e-12, atol=1e-12)


RNG = np.random.default_rng(11)
X_ = RNG.standard_normal((4, 3))
W_ = RNG.standard_normal((3, 5))
B_ = RNG.standard_normal(5)


def test_affine_layer_is_matmul_then_add():
    layer = _both(G.affine, x=X_, w=W_, b=B_)
    gates = _both(lambda x, w, b: x @ w + b, x=X_, w=W_, b=B_)
    _assert_same(layer, gates)
    np.testing.assert_allclose(layer[0], affine_forward(X_, W_, B_)[0])


@pytest.mark.parametrize(("name", "composition"), [
    ("relu", lambda z: G.maximum(z, 0.0)),
    ("relu", G.relu),
    ("sigmoid", G.sigmoid),
    ("sigmoid", lambda z: 1.0 / (1.0 + G.exp(-z))),
    ("tanh", G.tanh),
    ("tanh", lambda z: (G.exp(2.0 * z) - 1.0) / (G.exp(2.0 * z) + 1.0)),
    ("leaky_relu", lambda z: G.maximum(z, 0.01 * z)),
])
def test_activation_layers_are_their_gates(name, composition):
    _assert_same(_both(lambda z: G.activation(z, name), z=X_), _both(composition, z=X_))
    np.testing.assert_allclose(_both(composition, z=X_)[0], activation_forward(X_.copy(), name)[0], rtol=1e-12)


def test_softmax_and_svm_losses_are_compositions_of_gates():
    """Softmax: -mean log(e^s_y / Σ e^s); SVM: mean Σ_{j≠y} max(s_j - s_y + 1, 0), gates only."""
    scores, y = RNG.standard_normal((6, 4)), RNG.integers(4, size=6)
    Y = np.eye(4)[y]               # one-hot labels
    row_sum = np.ones((4, 4))      # s @ row_sum puts each row's sum in every column
    softmax = _both(lambda s: -G.sum_all(Y * G.log(G.exp(s) / (G.exp(s) @ row_sum))) / 6.0, s=scores)
    svm = _both(lambda s: G.sum_all(G.maximum(s - (s * Y) @ row_sum + 1.0, 0.0) * (1.0 - Y)) / 6.0, s=scores)
    _assert_same(_both(lambda s: G.softmax_loss(s, y), s=scores), softmax)
    _assert_same(_both(lambda s: G.svm_loss(s, y), s=scores), svm)
    assert softmax[0] == pytest.approx(softmax_loss(scores, y)[0], abs=1e-12)
    assert svm[0] == pytest.approx(svm_loss(scores, y)[0], abs=1e-12)
