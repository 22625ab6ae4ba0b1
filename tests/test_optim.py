"""Update rules (checked against their formulas, step by step) and learning-rate schedules."""

import math

import numpy as np
import pytest

from cs_nets.optim import learning_rate, nesterov_momentum, sgd, sgd_momentum, update_rule


def grads(rng, steps, shape=(4, 3)):
    return [rng.standard_normal(shape) for _ in range(steps)]


def test_sgd_updates_in_place():
    w = np.ones(3)
    out, _ = sgd(w, np.array([1.0, -2.0, 0.5]), {"learning_rate": 0.1})
    assert out is w
    np.testing.assert_allclose(w, [0.9, 1.2, 0.95])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_rules_match_their_formulas(nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    lr, mu = 0.05, 0.8
    w, config = w0.copy(), {"learning_rate": lr, "momentum": mu}
    w_ref, v_ref = w0.copy(), np.zeros_like(w0)
    rule = nesterov_momentum if nesterov else sgd_momentum
    for g in grads(rng, 5):
        rule(w, g.copy(), config)
        v_ref = mu * v_ref - lr * g
        w_ref = w_ref + (mu * v_ref - lr * g if nesterov else v_ref)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)


def test_float32_stays_float32():
    w = np.ones((3, 2), np.float32)
    config = {"learning_rate": 1e-3, "momentum": 0.9}
    nesterov_momentum(w, np.ones((3, 2), np.float32), config)
    assert w.dtype == np.float32 and config["velocity"].dtype == np.float32


def test_update_rule_choice():
    assert update_rule(0.0, False) is sgd
    assert update_rule(0.9, False) is sgd_momentum
    assert update_rule(0.9, True) is nesterov_momentum


def test_schedules():
    assert learning_rate(0.1, "constant", 7, 10) == 0.1
    assert learning_rate(0.1, "step", 3, 10, lr_decay=0.5) == pytest.approx(0.0125)
    assert learning_rate(0.1, "cosine", 0, 10) == pytest.approx(0.1)
    assert learning_rate(0.1, "cosine", 5, 10) == pytest.approx(0.05)
    assert learning_rate(0.1, "cosine", 9, 10) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.9)))
