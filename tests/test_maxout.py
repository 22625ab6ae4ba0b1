"""Maxout: max(w1ᵀx + b1, ..., wkᵀx + bk) per unit, in the layers, both nets, the graph, configs and memory."""

import numpy as np
import pytest

from cs_nets.config import ModelConfig
from cs_nets.errors import ArgumentError
from cs_nets.memory import param_shapes
from cs_nets.nn import graph as G
from cs_nets.nn.activations import maxout_backward, maxout_forward
from cs_nets.nn.gradcheck import numerical_gradient, rel_error
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.models import FullyConnectedNet, TwoLayerNet, build_model

RNG = np.random.default_rng(5)


def maxout_loop(z, pieces):
    """Reference: unit h of row n is the max over j of z[n, j*H + h]."""
    n, width = z.shape
    units = width // pieces
    out = np.empty((n, units))
    for i in range(n):
        for h in range(units):
            out[i, h] = max(z[i, j * units + h] for j in range(pieces))
    return out


@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_maxout_forward_matches_the_loop_and_its_gradient_the_numerical_one(pieces):
    z = RNG.standard_normal((4, pieces * 3))
    a, cache = maxout_forward(z, pieces)
    np.testing.assert_array_equal(a, maxout_loop(z, pieces))
    da = RNG.standard_normal(a.shape)
    dz = maxout_backward(da, cache)
    numeric, _ = numerical_gradient(lambda: float(np.sum(maxout_forward(z, pieces)[0] * da)), z)
    assert dz.shape == z.shape and rel_error(dz, numeric) < 1e-9
    # the max gate routes: each unit's gradient reaches exactly one piece
    assert np.count_nonzero(dz) == np.count_nonzero(da)


def test_maxout_keeps_float32_and_refuses_a_bad_width():
    a, cache = maxout_forward(np.ones((2, 6), dtype=np.float32), 2)
    assert a.dtype == np.float32 and maxout_backward(a, cache).dtype == np.float32
    with pytest.raises(ArgumentError, match="do not split into 4 pieces"):
        maxout_forward(np.ones((2, 6)), 4)


def test_maxout_layer_is_the_max_gate_over_affine_gates():
    """The lecture's max(w1ᵀx + b1, w2ᵀx + b2), built from the graph's gates, equals the library's layer."""
    X, H = RNG.standard_normal((5, 4)), 3
    values = {"W": RNG.standard_normal((4, 2 * H)), "b": RNG.standard_normal(2 * H)}
    upstream = RNG.standard_normal((5, H))
    W, b = G.Input("W"), G.Input("b")
    layer = G.Graph(G.sum_all(G.activation(G.affine(X, W, b), "maxout", pieces=2) * upstream))
    w1, w2 = W @ np.eye(2 * H)[:, :H], W @ np.eye(2 * H)[:, H:]   # the two pieces' columns
    b1, b2 = b @ np.eye(2 * H)[:, :H], b @ np.eye(2 * H)[:, H:]
    gates = G.Graph(G.sum_all(G.maximum(X @ w1 + b1, X @ w2 + b2) * upstream))
    assert layer.forward(**values) == pytest.approx(gates.forward(**values), abs=1e-12)
    for name, grad in layer.backward().items():
        np.testing.assert_allclose(grad, gates.backward()[name], atol=1e-12)


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_flat_modular_and_graph_maxout_nets_agree(loss):
    N, D, H, C, k, reg = 6, 5, 4, 3, 3, 0.05
    X, y = RNG.standard_normal((N, D)), RNG.integers(C, size=N)
    flat = TwoLayerNet(D, C, dtype="float64", hidden_dim=H, activation="maxout", maxout_pieces=k, loss=loss, reg=reg)
    modular = FullyConnectedNet(D, C, dtype="float64", hidden_dims=[H], activation="maxout", maxout_pieces=k,
                                loss=loss, reg=reg)
    assert {n: p.shape for n, p in flat.params.items()} == {"W1": (D, k * H), "b1": (k * H,), "W2": (H, C),
                                                             "b2": (C,)}
    flat.params["b1"][...] = RNG.standard_normal(k * H)
    modular.load_params(flat.params)
    W1, b1, W2, b2 = (G.Input(n) for n in ("W1", "b1", "W2", "b2"))
    scores = G.affine(G.activation(G.affine(X, W1, b1), "maxout", pieces=k), W2, b2)
    data = G.softmax_loss(scores, y) if loss == "softmax" else G.svm_loss(scores, y)
    net = G.Graph(data + reg * (G.sum_all(G.square(W1)) + G.sum_all(G.square(W2))))
    graph_loss, graph_grads = net.forward(**flat.params), net.backward()
    (flat_loss, flat_grads), (mod_loss, mod_grads) = flat.loss(X, y), modular.loss(X, y)
    assert graph_loss == pytest.approx(flat_loss, abs=1e-10) and mod_loss == pytest.approx(flat_loss, abs=1e-10)
    for name in flat.params:
        np.testing.assert_allclose(graph_grads[name], flat_grads[name], atol=1e-10)
        np.testing.assert_allclose(mod_grads[name], flat_grads[name], atol=1e-10)


def test_deep_maxout_net_shapes_and_hyperparams():
    model = build_model("fc_net", 7, 4, hidden_dims=[6, 5], activation="maxout", maxout_pieces=3)
    shapes = {n: p.shape for n, p in model.params.items()}
    assert shapes == {"W1": (7, 18), "b1": (18,), "W2": (6, 15), "b2": (15,), "W3": (5, 4), "b3": (4,)}
    assert model.hyperparams()["maxout_pieces"] == 3
    again = build_model("fc_net", 7, 4, **model.hyperparams())
    assert {n: p.shape for n, p in again.params.items()} == shapes
    assert model.loss(np.ones((2, 7), dtype=np.float32)).shape == (2, 4)
    assert "maxout_pieces" not in build_model("fc_net", 7, 4).hyperparams()  # only maxout shapes by it
    with pytest.raises(ArgumentError, match="maxout_pieces"):
        build_model("two_layer", 7, 4, activation="maxout", maxout_pieces=0)


@pytest.mark.parametrize("model_type", ["two_layer", "fc_net"])
def test_config_and_memory_estimate_see_the_wider_layer(model_type):
    section = ModelConfig(type=model_type, activation="maxout", maxout_pieces=4, hidden_dims=[10])
    hyper = section.build_kwargs()
    assert hyper["maxout_pieces"] == 4
    shapes = param_shapes(model_type, 3072, 10, hyper)
    assert shapes["W1"] == (3072, 40) and shapes["W2"] == (10, 10)
    model = build_model(model_type, 3072, 10, **hyper)
    assert {n: p.shape for n, p in model.params.items()} == shapes
    assert "maxout_pieces" not in ModelConfig(type=model_type, hidden_dims=[10]).build_kwargs()


class PoisonAfterHandover(Gradients):
    """Overwrites each parameter with NaN as soon as its gradient is handed over, as an in-place update
    would change it: a model that reads a parameter after that returns NaN somewhere."""

    def __init__(self, params):
        super().__init__()
        self.params = params

    def weight(self, name, a, b, W, reg=0.0):
        grad = super().weight(name, a, b, W, reg).copy()
        self.params[name][...] = np.nan
        self.grads[name] = grad
        return grad

    def bias(self, name, dz):
        grad = super().bias(name, dz).copy()
        self.params[name][...] = np.nan
        self.grads[name] = grad
        return grad


@pytest.mark.parametrize("model_type", ["two_layer", "fc_net"])
def test_maxout_hands_each_gradient_over_after_its_last_use(model_type):
    hyper = {"hidden_dim": 6} if model_type == "two_layer" else {"hidden_dims": [6, 5]}
    model = build_model(model_type, 5, 3, dtype="float64", activation="maxout", maxout_pieces=3, reg=0.1, **hyper)
    X, y = RNG.standard_normal((8, 5)), RNG.integers(3, size=8)
    loss, clean = model.loss(X, y)
    poisoned_loss, poisoned = model.loss(X, y, grads_out=PoisonAfterHandover(model.params))
    assert poisoned_loss == loss
    for name, grad in clean.items():
        np.testing.assert_array_equal(poisoned[name], grad)


def test_a_maxout_model_survives_its_checkpoint(tmp_path):
    from cs_nets.data.pipeline import InputPipeline
    from cs_nets.data.preprocess import Normalizer
    from cs_nets.runs.checkpoint import load_checkpoint, save_checkpoint

    model = build_model("fc_net", 6, 3, hidden_dims=[4], activation="maxout", maxout_pieces=3, seed=4)
    inputs = InputPipeline([], Normalizer("mean")).fit(RNG.standard_normal((20, 6)))
    loaded, _, _ = load_checkpoint(save_checkpoint(tmp_path / "model.npz", model, inputs))
    assert loaded.hyperparams() == model.hyperparams()
    for name, param in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], param)
