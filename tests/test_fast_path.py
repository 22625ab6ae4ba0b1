"""The fast training path computes exactly what the plain one does.

What is checked: gradients do not depend on earlier calls (nothing stale is reused),
held gradients are never overwritten, float32 stays float32 in every intermediate of
a training run, gradients written into the optimizer's buffers (alpha * dL/dk +
beta * buffer) equal the plain ones, the update rules equal their whole-array
formulas, the trainer equals a plain textbook loop, and the softmax gradient holds
no subnormal floats (they make the next matrix product ~100x slower).
"""

import sys

import numpy as np
import pytest

import cs_nets
from cs_nets.blas import BLOCK_ELEMENTS
from cs_nets.config import OptimConfig, TrainConfig
from cs_nets.losses import softmax_loss
from cs_nets.models import build_model
from cs_nets.optim import SGD, Momentum, step
from cs_nets.trainer import fit

D, C = 12, 5
MODELS = [("linear", {"loss": "softmax", "reg": 0.1}),
          ("two_layer", {"hidden_dim": 9, "reg": 0.1, "activation": "relu"}),
          ("two_layer", {"hidden_dim": 9, "reg": 0.1, "activation": "gelu"}),
          ("fc_net", {"hidden_dims": [9, 7], "reg": 0.1, "activation": "elu"})]


def batch(n, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)).astype(dtype), rng.integers(C, size=n)


@pytest.mark.parametrize("model_type, hyper", MODELS)
def test_consecutive_loss_calls_match_a_fresh_model(model_type, hyper):
    used = build_model(model_type, D, C, seed=1, **hyper)
    first_loss, first_grads = used.loss(*batch(8, seed=0))
    kept = {k: g.copy() for k, g in first_grads.items()}
    used.predict(batch(30, seed=2)[0])  # a bigger scoring call in between
    loss, grads = used.loss(*batch(5, seed=3))

    fresh_loss, fresh_grads = build_model(model_type, D, C, seed=1, **hyper).loss(*batch(5, seed=3))
    assert loss == fresh_loss
    for name in fresh_grads:
        np.testing.assert_array_equal(grads[name], fresh_grads[name])
        np.testing.assert_array_equal(first_grads[name], kept[name])  # not overwritten


def float_dtypes_seen(run):
    """{(function, variable): dtype} of every floating array or NumPy scalar that was a local
    variable of a cs_nets function when it returned, while run() ran."""
    seen = {}
    package = cs_nets.__path__[0]

    def tracer(frame, event, arg):
        if not frame.f_code.co_filename.startswith(package):
            return None
        if event == "return":
            for name, value in frame.f_locals.items():
                dtype = getattr(value, "dtype", None)
                if isinstance(value, (np.ndarray, np.generic)) and np.issubdtype(dtype, np.floating):
                    seen[(frame.f_code.co_name, name)] = dtype
        return tracer

    previous = sys.gettrace()  # e.g. coverage's: put it back afterwards
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(previous)
    return seen


@pytest.mark.parametrize("model_type, hyper", MODELS)
@pytest.mark.parametrize("nesterov", [False, True])
def test_float32_training_keeps_every_intermediate_float32(model_type, hyper, nesterov):
    X, y = batch(50, seed=4)
    model = build_model(model_type, D, C, seed=0, **hyper)
    seen = float_dtypes_seen(lambda: fit(
        model, X, y, X[:10], y[:10], OptimConfig(learning_rate=1e-2, momentum=0.9, nesterov=nesterov),
        TrainConfig(batch_size=16, num_epochs=2, train_eval_size=10), progress=False))
    assert ("loss", "X") in seen and ("softmax_loss", "probs") in seen  # the tracer saw the hot path
    upcast = {where: dtype for where, dtype in seen.items() if dtype != np.float32}
    assert not upcast


def test_momentum_and_sgd_steps_equal_their_whole_array_formulas_bit_for_bit():
    rng = np.random.default_rng(0)
    shape = (BLOCK_ELEMENTS // 100 + 37, 300)  # > BLOCK_ELEMENTS entries, a partial last block
    w0 = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    lr, mu = np.float32(0.05), np.float32(0.8)

    rule = Momentum(0.8)
    w, state = w0.copy(), rule.new_state(w0)
    w_ref, v_ref = w0.copy(), np.zeros_like(w0)
    for g in grads:
        step(rule, w, g, state, 0.05)
        v_ref = v_ref * mu - g * lr
        w_ref = w_ref + v_ref
    np.testing.assert_array_equal(w, w_ref)

    rule = SGD()
    w = w0.copy()
    step(rule, w, grads[0], rule.new_state(w), 0.05)
    np.testing.assert_array_equal(w, w0 - grads[0] * lr)


@pytest.mark.parametrize("model_type, hyper", MODELS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_written_into_buffers_equal_alpha_grad_plus_beta_buffer(model_type, hyper, dtype, blas_backend):
    """loss(grads_out=, alpha=, beta=) is the optimizer's fused path: out = alpha dL/dk + beta out."""
    model = build_model(model_type, D, C, seed=1, dtype=dtype, **hyper)
    X, y = batch(8, seed=0, dtype=dtype)
    loss, grads = model.loss(X, y)
    rng = np.random.default_rng(2)
    before = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in model.params.items()}
    out = {k: b.copy() for k, b in before.items()}
    fused_loss, fused = model.loss(X, y, grads_out=out, alpha=-0.3, beta=0.7)
    assert fused_loss == loss
    tol = 1e-12 if dtype == "float64" else 1e-5
    for k in grads:
        assert fused[k] is out[k] and out[k].dtype == dtype
        np.testing.assert_allclose(out[k], -0.3 * grads[k] + 0.7 * before[k], rtol=tol, atol=tol)
    # beta = 0 never reads the buffer (BLAS semantics): NaN left in it does not leak
    out = {k: np.full_like(b, np.nan) for k, b in before.items()}
    model.loss(X, y, grads_out=out, alpha=2.0, beta=0.0)
    for k in grads:
        np.testing.assert_allclose(out[k], 2.0 * grads[k], rtol=tol, atol=tol)


def test_a_wrong_gradient_buffer_is_refused():
    model = build_model("two_layer", D, C, hidden_dim=4)
    X, y = batch(3, seed=0)
    out = {k: np.zeros_like(p) for k, p in model.params.items()}
    out["W1"] = np.zeros((D, 5), np.float32)
    with pytest.raises(ValueError, match=r"out\['W1'\]: expected a float32 array of shape \(12, 4\)"):
        model.loss(X, y, grads_out=out, alpha=-1.0, beta=0.9)
    with pytest.raises(ValueError, match="need out= buffers"):
        model.loss(X, y, alpha=-1.0)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_trainer_equals_a_plain_textbook_loop(nesterov, momentum, blas_backend):
    """The trainer (gather into a kept buffer, gradients written into the optimizer's buffers,
    BLAS updates) against the course's loop, in float64 so that only the algorithm can differ."""
    rng = np.random.default_rng(5)
    n, batch_size, seed, lr, mu = 230, 64, 7, 0.01, momentum  # a partial last batch
    X = rng.standard_normal((n, 300))
    y = rng.integers(C, size=n)
    hyper = dict(hidden_dim=250, reg=1e-3, dtype="float64")
    model = build_model("two_layer", 300, C, seed=seed, **hyper)
    after_epoch = []  # the params when each epoch ends (the trainer restores the best one at the end)
    fit(model, X, y, X[:20], y[:20], OptimConfig(learning_rate=lr, momentum=mu, nesterov=nesterov),
          TrainConfig(batch_size=batch_size, num_epochs=2, train_eval_size=20), seed=seed, progress=False,
          on_epoch=lambda m, s: after_epoch.append({k: p.copy() for k, p in model.params.items()}))

    plain = build_model("two_layer", 300, C, seed=seed, **hyper)
    order_rng = np.random.default_rng(seed)
    order_rng.choice(n, size=20, replace=False)  # the trainer draws its train_accuracy rows first
    velocity = {k: np.zeros_like(p) for k, p in plain.params.items()}
    for _ in range(2):
        order = order_rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            _, grads = plain.loss(X[idx], y[idx])
            for k, p in plain.params.items():
                velocity[k] = mu * velocity[k] - lr * grads[k]
                if nesterov:
                    plain.params[k] = p + mu * velocity[k] - lr * grads[k]
                else:
                    plain.params[k] = p + velocity[k]
    assert len(after_epoch) == 2 and after_epoch[1].keys() == plain.params.keys()
    for k in plain.params:
        np.testing.assert_allclose(after_epoch[1][k], plain.params[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_gradient_has_no_subnormals(dtype):
    tiny = np.finfo(dtype).tiny
    gap = -np.log(tiny) + 3  # e^-gap is subnormal in this dtype
    scores = np.array([[0.0, -gap, -1.0], [-gap, 0.0, -gap / 2]], dtype=dtype)
    y = np.array([0, 1])
    loss, dscores = softmax_loss(scores, y)
    assert dscores.dtype == dtype
    nonzero = np.abs(dscores[dscores != 0])
    assert nonzero.min() >= tiny
    assert dscores[0, 1] == 0 and dscores[1, 0] == 0  # the would-be subnormal entries
    # everything else is the exact softmax gradient
    shifted = scores.astype(np.float64) - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    probs[[0, 1], y] -= 1
    np.testing.assert_allclose(dscores, probs / 2, rtol=1e-6, atol=tiny)
    assert np.isfinite(loss)
