"""Gradient checking: the utility itself, and every model x loss x activation."""

import itertools

import numpy as np
import pytest

from cs_nets.errors import ConfigError
from cs_nets.nn.activations import ACTIVATION_NAMES, ACTIVATIONS
from cs_nets.nn.gradcheck import (
    KINK_MARGIN,
    _case,
    check_model_gradients,
    gradcheck_cases,
    kink_distance,
    numerical_gradient,
    rel_error,
)
from cs_nets.nn.losses import LOSSES
from cs_nets.nn.models import build_model

PARAMS = {
    "linear": ["W", "b"],
    "two_layer": ["W1", "b1", "W2", "b2"],
    "fc_net": ["W1", "b1", "W2", "b2", "W3", "b3"],
}


@pytest.fixture(scope="module")
def all_rows():
    return gradcheck_cases()


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.5]])
    before = x.copy()
    grad, idx = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(grad, 3 * before**2, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(idx, np.arange(6))
    np.testing.assert_array_equal(x, before)  # restored bit for bit


def test_numerical_gradient_samples_entries():
    x = np.linspace(-1, 1, 100).reshape(10, 10)
    grad, idx = numerical_gradient(lambda: float(np.sum(x**2)), x, num_checks=7,
                                   rng=np.random.default_rng(1))
    assert len(idx) == len(set(idx)) == 7
    np.testing.assert_allclose(grad.flat[idx], 2 * x.flat[idx], rtol=1e-8, atol=1e-9)
    assert np.isnan(grad).sum() == 93


def test_rel_error_values():
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error([1.0, 2.0], [1.0, 2.002]) == pytest.approx(0.002 / 2.002)
    assert rel_error([0.0, 0.0], [0.0, 0.0]) == 0.0  # the TINY floor avoids 0/0
    # relative to the largest entry: a near-zero entry's noise does not dominate
    assert rel_error([1.0, 1e-12], [1.0, 2e-12]) == pytest.approx(1e-12)


def test_every_combination_passes(all_rows):
    combos = {(r["model"], r["loss"], r["activation"]) for r in all_rows}
    expected = {("linear", loss, "-") for loss in LOSSES} | {
        (model, loss, act)
        for model, loss, act in itertools.product(("two_layer", "fc_net"), LOSSES, ACTIVATION_NAMES)
    }
    assert combos == expected  # 2 + 14 + 14 = 30 combinations (maxout included)
    for model, loss, act in combos:
        params = [r["param"] for r in all_rows if (r["model"], r["loss"], r["activation"]) ==
                  (model, loss, act)]
        assert params == PARAMS[model]
    worst = max(all_rows, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] < 1e-6, worst
    assert all(set(r) == {"model", "loss", "activation", "param", "max_rel_error"}
               for r in all_rows)


def test_filters_select_the_same_rows(all_rows):
    rows = gradcheck_cases(models=["fc_net"], losses=["svm"], activations=["elu"])
    expected = [r for r in all_rows if (r["model"], r["loss"], r["activation"]) ==
                ("fc_net", "svm", "elu")]
    assert rows == expected
    linear = gradcheck_cases(models=["linear"], activations=["relu"])
    assert {r["activation"] for r in linear} == {"-"} and len(linear) == 4


@pytest.mark.parametrize("kwargs, word", [({"models": ["cnn"]}, "models"),
                                           ({"losses": ["hinge"]}, "losses"),
                                           ({"activations": ["swish"]}, "activations")])
def test_bad_names_raise_config_error(kwargs, word):
    with pytest.raises(ConfigError, match=rf"^{word}:"):
        gradcheck_cases(**kwargs)


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("model_type, activation", [
    ("linear", "-"), *itertools.product(("two_layer", "fc_net"), ("relu", "leaky_relu", "elu"))])
def test_case_data_stay_clear_of_kinks(model_type, loss, activation):
    model, X, y = _case(model_type, loss, activation, [0, 1, 2, 3])
    assert kink_distance(model, X, y) > KINK_MARGIN
    assert KINK_MARGIN >= 1000 * 1e-5  # 1000 h with the default h


def test_kink_distance_of_a_linear_svm():
    model = build_model("linear", 2, 3, dtype="float64", loss="svm")
    model.load_params({"W": np.eye(2, 3), "b": np.zeros(3)})
    X, y = np.array([[2.0, 0.5]]), np.array([0])  # scores (2, 0.5, 0): margins -0.5, -1
    assert kink_distance(model, X, y) == pytest.approx(0.5)
    assert kink_distance(build_model("linear", 2, 3, loss="softmax"), X, y) == np.inf


def test_a_check_across_a_kink_would_fail():
    # why the kinks matter: at z = 0 the centered difference of relu sees slope 1/2
    forward, backward = ACTIVATIONS["relu"]
    z = np.array([[0.0, 1.0]])
    _, cache = forward(z.copy())
    analytic = backward(np.ones((1, 2)), cache)
    numeric, _ = numerical_gradient(lambda: float(forward(z.copy())[0].sum()), z)
    np.testing.assert_allclose(numeric, [[0.5, 1.0]])
    assert rel_error(analytic, numeric) == pytest.approx(0.5)


def test_check_model_gradients_catches_a_wrong_gradient():
    model, X, y = _case("two_layer", "softmax", "tanh", [0, 0, 0, 0])
    errors = check_model_gradients(model, X, y)
    assert set(errors) == {"W1", "b1", "W2", "b2"} and max(errors.values()) < 1e-6

    original = model.loss

    def buggy_loss(X, y=None):  # forget the 2 in d(reg W²)/dW
        if y is None:
            return original(X)
        loss, grads = original(X, y)
        grads["W1"] -= model.reg * model.params["W1"]
        return loss, grads

    model.loss = buggy_loss
    errors = check_model_gradients(model, X, y)
    assert errors["W1"] > 1e-3 and errors["b1"] < 1e-6


def test_check_model_gradients_with_sampling_and_dtype_guard():
    model, X, y = _case("fc_net", "svm", "relu", [0, 5, 5, 5])
    errors = check_model_gradients(model, X, y, num_checks=3)
    assert max(errors.values()) < 1e-6
    with pytest.raises(ConfigError, match=r"^model.dtype: expected float64"):
        check_model_gradients(build_model("linear", 5, 3), X, y)
