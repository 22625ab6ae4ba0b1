"""Update rules (the course's pure functions, checked against their formulas one element
at a time) and learning-rate schedules."""

import math

import numpy as np
import pytest

from cs_nets.nn.optim import learning_rate, nesterov_momentum, sgd, sgd_momentum, update_rule

SCHEDULE = [0.05, 0.05, 0.02, 0.02, 0.01]  # a learning-rate schedule changes lr between steps


def formula_loop(rule, w, grads, lrs, mu):
    """The update rules written out per element, in Python floats."""
    w, v = [float(x) for x in w.ravel()], [0.0] * w.size
    for dw, lr in zip(grads, lrs):
        for i, g in enumerate(float(x) for x in dw.ravel()):
            if rule == "sgd":
                w[i] -= lr * g
                continue
            v_prev = v[i]
            v[i] = mu * v_prev - lr * g
            w[i] += v[i] if rule == "momentum" else -mu * v_prev + (1 + mu) * v[i]
    return np.array(w).reshape(grads[0].shape), np.array(v).reshape(grads[0].shape)


@pytest.mark.parametrize("name, rule", [("sgd", sgd), ("momentum", sgd_momentum), ("nesterov", nesterov_momentum)])
def test_rules_match_their_formulas(name, rule):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in SCHEDULE]
    w, config = w0, {"momentum": 0.8}
    for dw, lr in zip(grads, SCHEDULE):
        config["learning_rate"] = lr
        w, config = rule(w, dw, config)
    w_ref, v_ref = formula_loop(name, w0, grads, SCHEDULE, 0.8)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12, atol=1e-15)
    if name != "sgd":
        np.testing.assert_allclose(config["velocity"], v_ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("rule", [sgd, sgd_momentum, nesterov_momentum])
def test_rules_are_pure(rule):
    w, dw = np.ones(3), np.array([1.0, -2.0, 0.5])
    config = {"learning_rate": 0.1, "momentum": 0.5, "velocity": np.full(3, 0.25)}
    kept = {k: np.copy(v) for k, v in config.items()}
    next_w, next_config = rule(w, dw, config)
    np.testing.assert_array_equal(w, 1.0)
    assert config.keys() == kept.keys() and all(np.array_equal(config[k], kept[k]) for k in kept)
    assert next_w is not w and next_config is not config


def test_the_course_defaults():
    w, dw = np.zeros(2), np.ones(2)
    next_w, config = sgd(w, dw)
    np.testing.assert_allclose(next_w, -0.01)
    assert config == {"learning_rate": 1e-2}
    next_w, config = sgd_momentum(w, dw)  # v starts at 0: v = -lr dw
    np.testing.assert_allclose(next_w, -0.01)
    assert config["momentum"] == 0.9 and config["learning_rate"] == 1e-2
    np.testing.assert_allclose(config["velocity"], -0.01)
    next_w, config = nesterov_momentum(w, dw)  # w + (1 + mu) v
    np.testing.assert_allclose(next_w, -0.019)


@pytest.mark.parametrize("rule", [sgd, sgd_momentum, nesterov_momentum])
def test_float32_stays_float32(rule):
    w = np.ones((3, 2), np.float32)
    config = {"learning_rate": np.float64(1e-3), "momentum": np.float64(0.9)}  # as YAML/NumPy may give them
    for _ in range(2):
        w, config = rule(w, np.ones((3, 2), np.float32), config)
    assert w.dtype == np.float32
    assert config.get("velocity", w).dtype == np.float32


def test_update_rule_choice():
    assert update_rule(0.0, False) is sgd and update_rule(0.0, True) is sgd
    assert update_rule(0.9, False) is sgd_momentum
    assert update_rule(0.5, True) is nesterov_momentum


def test_schedules():
    assert learning_rate(0.1, "constant", 7, 10) == 0.1
    assert learning_rate(0.1, "step", 3, 10, lr_decay=0.5) == pytest.approx(0.0125)
    assert learning_rate(0.1, "cosine", 0, 10) == pytest.approx(0.1)
    assert learning_rate(0.1, "cosine", 5, 10) == pytest.approx(0.05)
    assert learning_rate(0.1, "cosine", 9, 10) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.9)))
