"""Losses: vectorized vs loop reference, known values, dtype, regularization."""

import math

import numpy as np
import pytest

from cs_nets.errors import ArgumentError
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.losses import (
    LOSSES,
    l2_penalty,
    softmax_loss,
    softmax_loss_loop,
    svm_loss,
    svm_loss_loop,
)

PAIRS = [(svm_loss, svm_loss_loop), (softmax_loss, softmax_loss_loop)]


def score_cases():
    """(scores, y) float64 cases: random, integer (ties and exact zero margins), equal rows."""
    rng = np.random.default_rng(0)
    random = rng.standard_normal((20, 7))
    integer = rng.integers(-2, 3, size=(30, 5)).astype(np.float64)  # margins hit 0 exactly
    ties = np.zeros((4, 6))
    ties[1] = 3.0
    ties[2, :3] = 1.0
    return [
        (random, rng.integers(7, size=20)),
        (integer, rng.integers(5, size=30)),
        (ties, np.array([0, 5, 2, 3])),
    ]


@pytest.mark.parametrize("vectorized, loop", PAIRS, ids=["svm", "softmax"])
@pytest.mark.parametrize("case", range(3), ids=["random", "integer", "ties"])
def test_vectorized_matches_loop(vectorized, loop, case):
    scores, y = score_cases()[case]
    loss, dscores = vectorized(scores, y)
    loss_ref, dscores_ref = loop(scores, y)
    assert abs(loss - loss_ref) < 1e-10
    assert np.abs(dscores - dscores_ref).max() < 1e-10


def test_integer_case_really_has_zero_margins():
    scores, y = score_cases()[1]
    margins = scores - scores[np.arange(len(y)), y][:, None] + 1
    margins[np.arange(len(y)), y] = np.nan
    assert np.sum(margins == 0) > 10


def test_svm_zero_margin_gives_no_loss_and_no_gradient():
    # margins: class 1 -> -1 - 0 + 1 = 0 (exactly on the hinge), class 2 -> 2 - 0 + 1 = 3
    scores = np.array([[0.0, -1.0, 2.0]])
    loss, dscores = svm_loss(scores, np.array([0]))
    assert loss == 3.0
    np.testing.assert_array_equal(dscores, [[-1.0, 0.0, 1.0]])


def test_equal_scores_give_known_losses():
    C = 4
    scores, y = np.zeros((3, C)), np.array([0, 1, 3])
    assert svm_loss(scores, y)[0] == pytest.approx(C - 1)  # every margin is 1
    assert softmax_loss(scores, y)[0] == pytest.approx(math.log(C))  # uniform probabilities


def test_softmax_is_stable_for_huge_scores():
    scores = np.array([[1000.0, 1001.0, 999.0], [-1e4, -1e4, -1e4 + 2]])
    y = np.array([1, 0])
    with np.errstate(all="raise"):
        loss, dscores = softmax_loss(scores, y)
    loss_shifted, dscores_shifted = softmax_loss(scores - scores.max(axis=1, keepdims=True), y)
    assert loss == pytest.approx(loss_shifted, rel=1e-12)
    np.testing.assert_allclose(dscores, dscores_shifted, rtol=1e-12)
    # row 0 alone: shifted scores (-1, 0, -2), correct class 1 -> log(e^-1 + 1 + e^-2)
    expected = math.log(math.exp(-1) + 1 + math.exp(-2))
    assert softmax_loss(scores[:1], y[:1])[0] == pytest.approx(expected, rel=1e-12)


def test_softmax_gradient_rows_sum_to_zero():
    scores, y = score_cases()[0]
    _, dscores = softmax_loss(scores, y)
    np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_in_float32_out(name):
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(5, size=8)
    loss, dscores = LOSSES[name](scores, y)
    assert type(loss) is float
    assert dscores.dtype == np.float32 and dscores.shape == (8, 5)
    loss64, dscores64 = LOSSES[name](scores.astype(np.float64), y)
    assert loss == pytest.approx(loss64, rel=1e-6)
    np.testing.assert_allclose(dscores, dscores64, atol=1e-7)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize(
    "scores, y, word",
    [
        (np.zeros((3, 4)), np.array([0, 1, 4]), "y"),      # label out of range
        (np.zeros((3, 4)), np.array([0, 1]), "y"),         # wrong length
        (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), "y"),  # not integers
        (np.zeros(4), np.array([0]), "scores"),            # not 2-D
    ],
)
def test_bad_inputs_raise_config_error(name, scores, y, word):
    with pytest.raises(ArgumentError, match=rf"^{word}:"):
        LOSSES[name](scores, y)


def test_l2_penalty_and_gradient_convention():
    W1 = np.array([[1.0, -2.0], [0.5, 0.0]])
    W2 = np.array([[3.0]])
    assert l2_penalty([W1, W2], 0.1) == pytest.approx(0.1 * (1 + 4 + 0.25 + 9))
    assert l2_penalty([W1, W2], 0.0) == 0.0
    grads = Gradients()
    grads.weight("W1", np.eye(2), np.ones_like(W1), W1, 0.1)
    np.testing.assert_allclose(grads.grads["W1"], 1 + 0.2 * W1)


def test_l2_with_numpy_float64_reg_keeps_float32():
    W = np.ones((3, 2), dtype=np.float32)
    grads = Gradients()
    grads.weight("W", np.zeros((3, 1), np.float32), np.zeros((1, 2), np.float32), W, np.float64(0.25))
    assert grads.grads["W"].dtype == np.float32
    np.testing.assert_array_equal(grads.grads["W"], 0.5)
    assert type(l2_penalty([W], np.float64(0.25))) is float
