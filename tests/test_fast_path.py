"""The fast training path computes exactly what the plain one does.

What is checked: gradients do not depend on earlier calls (nothing stale is reused),
held gradients are never overwritten, float32 stays float32 in every intermediate of
a training run, the trainer's fused step (each parameter updated inside the backward
pass, cs_nets.training._fused_step) equals the course's update rules applied to the plain
gradients for every rule with and without L2, the trainer equals a plain textbook loop,
and the softmax gradient holds no subnormal floats (they make the next matrix product
~100x slower).
"""

import sys

import numpy as np
import pytest

import cs_nets
from cs_nets.config import OptimConfig, TrainConfig
from cs_nets.errors import ArgumentError
from cs_nets.nn.losses import softmax_loss
from cs_nets.nn.models import build_model
from cs_nets.nn.optim import update_rule
from cs_nets.training import _blas as blas
from cs_nets.training._blas import BLOCK_ELEMENTS
from cs_nets.training._fused_step import FusedStep
from cs_nets.training.trainer import fit

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
    blas.backend()  # bind BLAS first: its one-time self-check runs in float64 on purpose
    seen = float_dtypes_seen(lambda: fit(
        model, X, y, X[:10], y[:10], OptimConfig(learning_rate=1e-2, momentum=0.9, nesterov=nesterov),
        TrainConfig(batch_size=16, num_epochs=2, train_eval_size=10), progress=False))
    assert ("loss", "X") in seen and ("softmax_loss", "probs") in seen  # the tracer saw the hot path
    upcast = {where: dtype for where, dtype in seen.items() if dtype != np.float32}
    assert not upcast


RULES = [(0.0, False), (0.9, False), (0.9, True)]  # (momentum, nesterov): sgd, momentum, Nesterov


def course_steps(model, batches, lrs, rule, config):
    """The course's loop: the model's own gradients (new arrays), then w, config = rule(w, dw, config)."""
    configs = {k: dict(config) for k in model.params}
    for (X, y), lr in zip(batches, lrs):
        _, grads = model.loss(X, y)
        for k, p in model.params.items():
            configs[k]["learning_rate"] = lr
            model.params[k], configs[k] = rule(p, grads[k], configs[k])
    return configs


@pytest.mark.parametrize("model_type, hyper", MODELS)
@pytest.mark.parametrize("momentum, nesterov", RULES)
@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_fused_step_equals_the_course_rules(model_type, hyper, momentum, nesterov, reg, blas_backend):
    """Each parameter updated inside the backward pass (gemm into the weights or the velocity,
    L2 folded in) equals the course rule applied to the plain gradient, in float64."""
    hyper = {**hyper, "reg": reg}
    fused = build_model(model_type, D, C, seed=1, dtype="float64", **hyper)
    plain = build_model(model_type, D, C, seed=1, dtype="float64", **hyper)
    batches = [batch(8, seed=s, dtype=np.float64) for s in range(4)]
    lrs = [0.1, 0.1, 0.05, 0.02]  # a schedule changes lr between steps
    step = FusedStep(fused.params, momentum, nesterov)
    for (X, y), lr in zip(batches, lrs):
        loss, grads = fused.loss(X, y, grads_out=step.begin(lr))
        step.end()
        assert grads == {}  # no gradient arrays: each one became an update
    configs = course_steps(plain, batches, lrs, update_rule(momentum, nesterov), {"momentum": momentum})
    for k in plain.params:
        np.testing.assert_allclose(fused.params[k], plain.params[k], rtol=1e-10, atol=1e-13)
        if momentum:
            np.testing.assert_allclose(step.configs[k]["velocity"], configs[k]["velocity"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("momentum, nesterov", RULES)
def test_fused_weight_update_on_large_float32_arrays(momentum, nesterov, blas_backend):
    """Arrays of several NumPy-fallback blocks, float32: the fused passes equal the course rule."""
    rng = np.random.default_rng(0)
    D_big, H, N, reg, lr = 3 * BLOCK_ELEMENTS // 200 + 7, 200, 16, 0.05, 0.01
    W = rng.standard_normal((D_big, H)).astype(np.float32)
    params = {"W": W.copy()}
    step = FusedStep(params, momentum, nesterov)
    rule, config = update_rule(momentum, nesterov), {"momentum": momentum, "learning_rate": lr}
    for _ in range(3):
        X = rng.standard_normal((N, D_big)).astype(np.float32)
        dZ = rng.standard_normal((N, H)).astype(np.float32)
        step.begin(lr).weight("W", X.T, dZ, params["W"], reg)
        step.end()
        dW = X.T.astype(np.float64) @ dZ + 2 * reg * W
        W, config = rule(W.astype(np.float64), dW, config)
    assert params["W"].dtype == np.float32
    np.testing.assert_allclose(params["W"], W, rtol=2e-5, atol=2e-5)


def test_the_fused_step_refuses_wrong_use():
    model = build_model("two_layer", D, C, hidden_dim=4)
    X, y = batch(3, seed=0)
    step = FusedStep(model.params, 0.9)
    with pytest.raises(ArgumentError, match="W1: not one of the parameters being trained"):
        step.begin(0.1).weight("W1", X.T, np.zeros((3, 4), np.float32), model.params["W1"].copy())
    with pytest.raises(ArgumentError, match=r"W1: the gradient \(12, 3\) @ \(3, 5\) does not fit"):
        step.begin(0.1).weight("W1", X.T, np.zeros((3, 5), np.float32), model.params["W1"])
    step.begin(0.1).bias("b1", np.zeros((3, 4), np.float32))
    with pytest.raises(ArgumentError, match="b1: its gradient was handed over twice"):
        step.bias("b1", np.zeros((3, 4), np.float32))
    with pytest.raises(ArgumentError, match="handed over no gradient for W1, W2, b2"):
        step.end()
    with pytest.raises(ArgumentError, match=r"b2: expected a gradient of shape \(5,\)"):
        step.begin(0.1).put("b2", np.zeros(4, np.float32))


@pytest.mark.parametrize("momentum, nesterov", RULES)
@pytest.mark.parametrize("reg", [0.0, 1e-3])
def test_trainer_equals_a_plain_textbook_loop(momentum, nesterov, reg, blas_backend):
    """The trainer (gather into a kept buffer, each parameter updated inside the backward pass,
    L2 folded into the BLAS passes) against the course's loop written out, in float64 so that
    only the algorithm can differ."""
    rng = np.random.default_rng(5)
    n, batch_size, seed, lr, mu = 230, 64, 7, 0.01, momentum  # a partial last batch
    X = rng.standard_normal((n, 300))
    y = rng.integers(C, size=n)
    hyper = dict(hidden_dim=250, reg=reg, dtype="float64")
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
            _, grads = plain.loss(X[idx], y[idx])  # L2 term included: dW = Xᵀ dZ + 2 reg W
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
