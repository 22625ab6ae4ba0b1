"""Update rules (checked against their formulas, step by step) and learning-rate schedules."""

import math

import numpy as np
import pytest

from cs_nets.optim import SGD, Momentum, NesterovMomentum, learning_rate, step, update_rule


def grads(rng, steps, shape=(4, 3)):
    return [rng.standard_normal(shape) for _ in range(steps)]


def test_sgd_updates_in_place():
    w = np.ones(3)
    rule = SGD()
    out = step(rule, w, np.array([1.0, -2.0, 0.5]), rule.new_state(w), lr=0.1)
    assert out is w
    np.testing.assert_allclose(w, [0.9, 1.2, 0.95])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_rules_match_their_formulas(nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    mu = 0.8
    rule = NesterovMomentum(mu) if nesterov else Momentum(mu)
    w = w0.copy()
    state = rule.new_state(w)
    w_ref, v_ref = w0.copy(), np.zeros_like(w0)
    for lr, g in zip([0.05, 0.05, 0.02, 0.02, 0.01], grads(rng, 5)):  # a schedule changes lr
        step(rule, w, g, state, lr)
        v_ref = mu * v_ref - lr * g
        w_ref = w_ref + (mu * v_ref - lr * g if nesterov else v_ref)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)


@pytest.mark.parametrize("rule", [SGD(), Momentum(0.9), NesterovMomentum(0.9)])
def test_float32_stays_float32(rule):
    w = np.ones((3, 2), np.float32)
    state = rule.new_state(w)
    step(rule, w, np.ones((3, 2), np.float32), state, lr=np.float64(1e-3))
    assert w.dtype == np.float32
    assert all(buffer.dtype == np.float32 for buffer in state.values())
    alpha, beta = rule.gradient_form(np.float64(1e-3))  # Python floats: they keep float32 arrays float32
    assert type(alpha) is float and type(beta) is float


def test_gradient_form_is_what_the_model_writes():
    """The buffer the model fills: the velocity for momentum (alpha=-lr, beta=mu), -lr dw otherwise."""
    assert SGD().gradient_form(0.1) == (-0.1, 0.0)
    assert Momentum(0.9).gradient_form(0.1) == (-0.1, 0.9)
    assert NesterovMomentum(0.9).gradient_form(0.1) == (-0.1, 0.0)


def test_update_rule_choice():
    assert type(update_rule(0.0, False)) is SGD
    assert type(update_rule(0.9, False)) is Momentum and update_rule(0.9, False).momentum == 0.9
    assert type(update_rule(0.5, True)) is NesterovMomentum and update_rule(0.5, True).momentum == 0.5


def test_schedules():
    assert learning_rate(0.1, "constant", 7, 10) == 0.1
    assert learning_rate(0.1, "step", 3, 10, lr_decay=0.5) == pytest.approx(0.0125)
    assert learning_rate(0.1, "cosine", 0, 10) == pytest.approx(0.1)
    assert learning_rate(0.1, "cosine", 5, 10) == pytest.approx(0.05)
    assert learning_rate(0.1, "cosine", 9, 10) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.9)))
