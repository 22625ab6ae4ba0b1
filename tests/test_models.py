"""The model contract, dtype discipline, two_layer == fc_net, init and argument checks."""

import json

import numpy as np
import pytest

from cs_nets.errors import ArgumentError
from cs_nets.nn.activations import ACTIVATIONS
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.models import MODEL_TYPES, FullyConnectedNet, LinearClassifier, TwoLayerNet, build_model

D, C, N = 6, 4, 10
SMALL = {"linear": {}, "two_layer": {"hidden_dim": 5}, "fc_net": {"hidden_dims": [5, 3]}}
COMBOS = [("linear", loss, None) for loss in ("svm", "softmax")] + [
    (model_type, loss, act)
    for model_type in ("two_layer", "fc_net")
    for loss in ("svm", "softmax")
    for act in sorted(ACTIVATIONS)
]


def make(model_type, loss="softmax", activation=None, dtype="float64", seed=0, **extra):
    hyper = dict(SMALL[model_type], loss=loss, **extra)
    if activation is not None:
        hyper["activation"] = activation
    return build_model(model_type, D, C, dtype=dtype, seed=seed, **hyper)


def data(dtype=np.float64, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)).astype(dtype), rng.integers(C, size=n)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_contract_scores_loss_grads_predict(model_type):
    model = make(model_type)
    X, y = data()
    scores = model.loss(X)
    assert scores.shape == (N, C)
    loss, grads = model.loss(X, y)
    assert type(loss) is float and loss > 0
    assert grads.keys() == model.params.keys()
    for name, grad in grads.items():
        assert grad.shape == model.params[name].shape
    labels = model.predict(X)
    assert labels.dtype == np.int64 and labels.shape == (N,)
    np.testing.assert_array_equal(labels, scores.argmax(axis=1))
    np.testing.assert_array_equal(model.predict(X, batch_size=3), labels)  # chunked
    assert model.model_type == model_type
    assert (model.input_dim, model.num_classes, model.dtype) == (D, C, np.float64)


def test_param_names_and_shapes():
    assert {k: v.shape for k, v in make("linear").params.items()} == {"W": (D, C), "b": (C,)}
    assert {k: v.shape for k, v in make("two_layer").params.items()} == {
        "W1": (D, 5), "b1": (5,), "W2": (5, C), "b2": (C,)}
    assert {k: v.shape for k, v in make("fc_net").params.items()} == {
        "W1": (D, 5), "b1": (5,), "W2": (5, 3), "b2": (3,), "W3": (3, C), "b3": (C,)}


def test_linear_scores_are_xw_plus_b():
    model = make("linear")
    model.params["b"][:] = [1, 2, 3, 4]
    X, _ = data()
    np.testing.assert_allclose(model.loss(X), X @ model.params["W"] + [1, 2, 3, 4], rtol=1e-12)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_regularization_is_reg_times_sum_w_squared_without_biases(model_type):
    X, y = data()
    plain = make(model_type, seed=4)
    for name, value in plain.params.items():
        if name.startswith("b"):
            value[...] = 0.5  # non-zero biases must not be penalized
    regularized = make(model_type, seed=4, reg=0.3)
    regularized.load_params(plain.params)
    loss0, grads0 = plain.loss(X, y)
    loss1, grads1 = regularized.loss(X, y)
    weights = [v for k, v in plain.params.items() if k.startswith("W")]
    assert loss1 - loss0 == pytest.approx(0.3 * sum(np.sum(W * W) for W in weights), rel=1e-12)
    for name, param in plain.params.items():
        expected = 2 * 0.3 * param if name.startswith("W") else 0
        np.testing.assert_allclose(grads1[name] - grads0[name], expected, atol=1e-12)


class DtypeSpy(np.ndarray):
    """An ndarray that records the dtype of every ufunc result computed from it."""

    seen = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, DtypeSpy) else x for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, DtypeSpy) else o for o in out)
        if isinstance(kwargs.get("where"), DtypeSpy):
            kwargs["where"] = kwargs["where"].view(np.ndarray)
        result = getattr(ufunc, method)(*plain, **kwargs)
        DtypeSpy.seen.append((ufunc.__name__, method, np.asarray(result).dtype))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result.view(DtypeSpy) if isinstance(result, np.ndarray) else result


@pytest.mark.parametrize("model_type, loss, activation", COMBOS)
def test_float32_end_to_end_no_intermediate_upcasts(model_type, loss, activation):
    model = make(model_type, loss, activation, dtype="float32", reg=0.1)
    model.reg = np.float64(1e-3)  # what a trainer might set: must not upcast anything
    for name in model.params:
        model.params[name] = model.params[name].view(DtypeSpy)
    X, y = data(np.float32)
    DtypeSpy.seen = []
    scores = model.loss(X)
    loss_value, grads = model.loss(X, y)

    assert scores.dtype == np.float32
    assert type(loss_value) is float
    assert all(g.dtype == np.float32 for g in grads.values())
    float_results = [(f, m, dt) for f, m, dt in DtypeSpy.seen if dt.kind == "f"]
    assert len(float_results) > 10  # the spy really saw the computation
    assert [r for r in float_results if r[2] != np.float32] == []


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_float64_input_to_float32_model_is_cast(model_type):
    model = make(model_type, dtype="float32")
    X, y = data(np.float64)
    assert model.loss(X).dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.loss(X, y)[1].values())


class SpoilingDestination(Gradients):
    """Keeps each gradient, then fills that parameter with NaN: a destination may update a
    parameter in place as soon as it has its gradient (the trainer's does)."""

    def __init__(self, params):
        super().__init__()
        self.params, self.order = params, []

    def weight(self, name, a, b, W, reg=0.0):
        grad = super().weight(name, a, b, W, reg).copy()
        self._spoil(name, grad)

    def bias(self, name, dz):
        self._spoil(name, super().bias(name, dz).copy())

    def _spoil(self, name, grad):
        self.grads[name] = grad
        self.order.append(name)
        self.params[name][...] = np.nan


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_destination_gets_each_gradient_after_the_parameters_last_use(model_type):
    """loss(X, y, grads_out=dest): every gradient goes to dest once, each after the model's
    last read of that parameter, and equals the plain call's."""
    X, y = data()
    loss, grads = make(model_type, reg=0.1).loss(X, y)
    model = make(model_type, reg=0.1)
    dest = SpoilingDestination(model.params)
    dest_loss, dest_grads = model.loss(X, y, grads_out=dest)
    assert dest_grads is dest.grads and sorted(dest.order) == sorted(model.params)
    assert dest_loss == loss
    for name in grads:
        np.testing.assert_allclose(dest_grads[name], grads[name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_two_layer_equals_fc_net_with_one_hidden_layer(loss, activation):
    hyper = dict(activation=activation, loss=loss, reg=0.05)
    two = TwoLayerNet(D, C, dtype="float64", seed=1, hidden_dim=7, **hyper)
    two.params["b1"][:] = np.linspace(-0.5, 0.5, 7)
    two.params["b2"][:] = [0.1, -0.2, 0.3, 0.0]
    fc = FullyConnectedNet(D, C, dtype="float64", seed=2, hidden_dims=[7], **hyper)
    fc.load_params(two.params)
    X, y = data(seed=5)
    np.testing.assert_allclose(fc.loss(X), two.loss(X), rtol=1e-12)
    loss_two, grads_two = two.loss(X, y)
    loss_fc, grads_fc = fc.loss(X, y)
    assert loss_fc == pytest.approx(loss_two, rel=1e-12)
    for name in two.params:
        np.testing.assert_allclose(grads_fc[name], grads_two[name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_hyperparams_rebuild_the_same_model(model_type):
    model = make(model_type, loss="svm", reg=0.25, init="xavier", seed=3)
    hyper = model.hyperparams()
    assert json.loads(json.dumps(hyper)) == hyper
    rebuilt = build_model(model_type, D, C, dtype="float64", seed=99, **hyper)
    assert type(rebuilt) is type(model) and rebuilt.hyperparams() == hyper
    assert {k: v.shape for k, v in rebuilt.params.items()} == {
        k: v.shape for k, v in model.params.items()}
    rebuilt.load_params(model.params)
    X, y = data()
    np.testing.assert_array_equal(rebuilt.loss(X), model.loss(X))
    assert rebuilt.loss(X, y)[0] == model.loss(X, y)[0]


def test_defaults_match_the_contract():
    assert make("linear").hyperparams() == {"loss": "softmax", "reg": 0.0, "init": 1e-3}
    assert build_model("linear", D, C).hyperparams() == {"loss": "svm", "reg": 0.0, "init": 1e-3}
    assert build_model("two_layer", D, C).hyperparams() == {
        "hidden_dim": 100, "activation": "relu", "loss": "softmax", "reg": 0.0, "init": "he"}
    assert build_model("fc_net", D, C).hyperparams() == {
        "hidden_dims": [100], "activation": "relu", "loss": "softmax", "reg": 0.0, "init": "he"}
    assert build_model("linear", D, C).dtype == np.float32


def test_seed_determines_the_weights_across_dtypes():
    a = make("fc_net", seed=7)
    b = make("fc_net", seed=7)
    c = make("fc_net", seed=8)
    low = make("fc_net", seed=7, dtype="float32")
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
        np.testing.assert_allclose(low.params[name], a.params[name], rtol=1e-7)
    assert not np.array_equal(a.params["W1"], c.params["W1"])


@pytest.mark.parametrize(
    "init, expected_std", [("he", (2 / 2000) ** 0.5), ("xavier", (1 / 2000) ** 0.5), (0.02, 0.02)]
)
def test_init_std_and_zero_biases(init, expected_std):
    model = build_model("two_layer", 2000, 10, seed=0, hidden_dim=60, init=init)
    assert model.params["W1"].std() == pytest.approx(expected_std, rel=0.02)
    assert model.params["W1"].mean() == pytest.approx(0, abs=0.02 * expected_std)
    assert not model.params["b1"].any() and not model.params["b2"].any()
    # the second layer's fan_in is hidden_dim
    if init == "he":
        assert model.params["W2"].std() == pytest.approx((2 / 60) ** 0.5, rel=0.15)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_few_gradient_steps_fit_an_easy_problem(model_type):
    rng = np.random.default_rng(0)
    centers = 3 * rng.standard_normal((C, D))
    y = rng.integers(C, size=200)
    X = (centers[y] + 0.3 * rng.standard_normal((200, D))).astype(np.float32)
    model = build_model(model_type, D, C, seed=0, **SMALL[model_type],
                        **({"init": 0.1} if model_type == "linear" else {}))
    first_loss = model.loss(X, y)[0]
    for _ in range(100):
        loss, grads = model.loss(X, y)
        for name in model.params:
            model.params[name] -= 0.1 * grads[name]
    assert loss < 0.5 * first_loss
    assert np.mean(model.predict(X) == y) > 0.95


@pytest.mark.parametrize(
    "model_type, hyper, message",
    [
        ("two_layer", {"hiden_dim": 10}, "hiden_dim: unknown hyperparameter for model 'two_layer'"),
        ("linear", {"hidden_dim": 10}, "hidden_dim: unknown hyperparameter for model 'linear'"),
        ("two_layer", {"hidden_dims": [10]}, "hidden_dims: unknown hyperparameter"),
        ("linear", {"loss": "hinge"}, "loss: expected one of svm, softmax, got 'hinge'"),
        ("two_layer", {"activation": "swish"}, "activation: expected one of relu, "),
        ("fc_net", {"activation": None}, "activation: expected one of relu, "),
        ("linear", {"reg": -1.0}, "reg: expected a finite number >= 0, got -1.0"),
        ("linear", {"reg": "0.1"}, "reg: expected a finite number >= 0, got '0.1'"),
        ("linear", {"reg": float("nan")}, "reg: expected a finite number >= 0, got nan"),
        ("two_layer", {"init": "kaiming"}, "init: expected one of he, xavier, got 'kaiming'"),
        ("two_layer", {"init": -0.1}, "init: expected a std >= 0 or one of he, xavier, got -0.1"),
        ("two_layer", {"hidden_dim": 0}, "hidden_dim: expected an integer >= 1, got 0"),
        ("two_layer", {"hidden_dim": 2.5}, "hidden_dim: expected an integer >= 1, got 2.5"),
        ("two_layer", {"hidden_dim": True}, "hidden_dim: expected an integer >= 1, got True"),
        ("fc_net", {"hidden_dims": [10, 0]}, "hidden_dims: expected a list of integers >= 1, got [10, 0]"),
        ("fc_net", {"hidden_dims": "10"}, "hidden_dims: expected a list of integers >= 1, got '10'"),
        ("fc_net", {"hidden_dims": 10}, "hidden_dims: expected a list of integers >= 1, got 10"),
    ],
)
def test_bad_hyperparameters_raise_config_error_naming_them(model_type, hyper, message):
    with pytest.raises(ArgumentError) as info:
        build_model(model_type, D, C, **hyper)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "args, kwargs, word",
    [
        (("cnn", D, C), {}, "model_type"),
        (("linear", 0, C), {}, "input_dim"),
        (("linear", D, 1), {}, "num_classes"),
        (("linear", D, C), {"dtype": "float16"}, "dtype"),
        (("linear", D, C), {"dtype": "nonsense"}, "dtype"),
        (("linear", D, C), {"seed": -1}, "seed"),
    ],
)
def test_bad_build_arguments_raise_config_error(args, kwargs, word):
    with pytest.raises(ArgumentError, match=rf"^{word}:"):
        build_model(*args, **kwargs)


def test_wrong_input_shape_and_bad_params_raise_config_error():
    model = make("linear")
    with pytest.raises(ArgumentError, match=r"^X: expected shape \(N, 6\), got \(3, 5\)"):
        model.loss(np.zeros((3, 5)))
    with pytest.raises(ArgumentError, match=r"^y:"):
        model.loss(np.zeros((3, D)), np.array([0, 1, C]))
    with pytest.raises(ArgumentError, match=r"^params\['W'\]: expected shape"):
        model.load_params({"W": np.zeros((D, C + 1)), "b": np.zeros(C)})
    with pytest.raises(ArgumentError, match=r"^params: expected keys"):
        model.load_params({"W": np.zeros((D, C))})
    with pytest.raises(ArgumentError, match=r"^batch_size:"):
        model.predict(np.zeros((3, D)), batch_size=0)


def test_classes_are_exported():
    assert isinstance(make("linear"), LinearClassifier)
    assert "LinearClassifier(input_dim=6, num_classes=4, dtype=float64" in repr(make("linear"))
