"""Gradient checking: compare analytic gradients with centered finite differences.

    numeric_i = (f(x + h e_i) - f(x - h e_i)) / 2h

Run it in float64: in float32 the rounding error of f (~1e-7 relative) divided
by 2h swamps the difference being measured.
"""

import itertools
import math

import numpy as np

from cs_nets.errors import ConfigError
from cs_nets.nn.activations import ACTIVATION_NAMES, MAXOUT
from cs_nets.nn.layers import activation_forward
from cs_nets.nn.losses import LOSSES
from cs_nets.nn.models import MODEL_TYPES, build_model
from cs_nets.nn.models.base import check_int

TINY = 1e-12  # floor of rel_error's denominator, so all-zero gradients compare as 0
KINKED_ACTIVATIONS = ("relu", "leaky_relu", "elu")  # elu: f'' jumps at 0
KINK_MARGIN = 1e-2  # = 1000 h: how far gradcheck_cases keeps inputs from any kink

# Small problem for gradcheck_cases: N examples, D inputs, C classes.
CASE_N, CASE_D, CASE_C = 6, 5, 3
CASE_HIDDEN = {"two_layer": {"hidden_dim": 7}, "fc_net": {"hidden_dims": [7, 6]}}
CASE_REG = 0.05  # non-zero, so the regularization gradient is checked too
CASE_MAXOUT_PIECES = 3  # more than the default 2, so a piece that is neither first nor last is checked


def numerical_gradient(f, x, h=1e-5, num_checks=None, rng=None):
    """Centered-difference gradient of the scalar f() with respect to the array x.

    f: () -> float, evaluated after x has been perturbed *in place* (so f must read x,
       e.g. lambda: model.loss(X, y)[0] with x = model.params["W1"]); x is restored.
    num_checks: check this many distinct random entries (all entries when None or
       >= x.size), drawn with rng (default np.random.default_rng(0)).
    Returns (grad, idx): grad is a float64 array shaped like x, NaN where not checked;
    idx holds the checked flat indices, so compare analytic.flat[idx] to grad.flat[idx].
    """
    if num_checks is None or num_checks >= x.size:
        idx = np.arange(x.size)
    else:
        num_checks = check_int("num_checks", num_checks, minimum=1)
        rng = np.random.default_rng(0) if rng is None else rng
        idx = np.sort(rng.choice(x.size, size=num_checks, replace=False))

    grad = np.full(x.shape, np.nan)
    for flat_index in idx:
        pos = np.unravel_index(flat_index, x.shape)
        old = x[pos]
        x[pos] = old + h
        f_plus = float(f())
        x[pos] = old - h
        f_minus = float(f())
        x[pos] = old  # restore exactly
        grad[pos] = (f_plus - f_minus) / (2 * h)
    return grad, idx


def rel_error(analytic, numeric):
    """max|a - n| / max(|a|, |n|, TINY), both maxima over all entries.

    Measured against the largest gradient entry, not entry by entry: an entry that
    is ~0 would otherwise be judged on pure rounding noise.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.size == 0:
        return 0.0
    scale = max(float(np.abs(analytic).max()), float(np.abs(numeric).max()), TINY)
    return float(np.abs(analytic - numeric).max()) / scale


def check_model_gradients(model, X, y, h=1e-5, num_checks=None):
    """{param name: rel_error(analytic, numeric)} for every parameter of a float64 model.

    num_checks limits each parameter to that many random entries (for large tensors).
    """
    if model.dtype != np.float64:
        raise ConfigError(
            f"model.dtype: expected float64 for a gradient check, got {model.dtype.name}"
        )
    _, grads = model.loss(X, y)
    rng = np.random.default_rng(0)
    errors = {}
    for name, param in model.params.items():
        numeric, idx = numerical_gradient(
            lambda: model.loss(X, y)[0], param, h=h, num_checks=num_checks, rng=rng
        )
        errors[name] = rel_error(grads[name].flat[idx], numeric.flat[idx])
    return errors


def kink_distance(model, X, y):
    """Smallest |value| over the points where the model's loss is not smooth.

    These are the pre-activations of relu / leaky_relu / elu units, the gap between the
    two largest pieces of a maxout unit (where the winner changes) and, for the SVM
    loss, the margins s_j - s_{y_i} + 1 (j != y_i). A finite difference that steps
    across one of them measures a mix of two slopes. Returns inf if there are none.
    """
    X = model.check_X(X)
    y = np.asarray(y)
    params = model.params
    num_layers = len(params) // 2
    layers = (
        [(params["W"], params["b"])]
        if "W" in params
        else [(params[f"W{i}"], params[f"b{i}"]) for i in range(1, num_layers + 1)]
    )
    activation = getattr(model, "activation", None)

    distances = [math.inf]
    out = X
    for i, (W, b) in enumerate(layers):
        out = out @ W + b
        if i < len(layers) - 1:  # a hidden layer
            if activation in KINKED_ACTIVATIONS:
                distances.append(float(np.abs(out).min()))
            pieces = getattr(model, "maxout_pieces", 1)
            if activation == MAXOUT and pieces > 1:
                top2 = np.sort(out.reshape(len(out), pieces, -1), axis=1)[:, -2:, :]
                distances.append(float((top2[:, 1] - top2[:, 0]).min()))
            out, _ = activation_forward(out, activation, pieces=pieces)
    if model.loss_name == "svm":
        rows = np.arange(len(y))
        margins = out - out[rows, y][:, None] + 1
        margins[rows, y] = np.inf  # the correct class is not a hinge
        distances.append(float(np.abs(margins).min()))
    return min(distances)


def gradcheck_cases(models=None, losses=None, activations=None, seed=0):
    """Gradient-check every model x loss x activation on small random float64 data.

    None means all of MODEL_TYPES / LOSSES / ACTIVATION_NAMES; linear has no activation
    and is reported once per loss with activation "-". Each combination builds a model
    (CASE_* sizes, reg = CASE_REG, random biases) and draws X ~ N(0, 1) and y; X is
    redrawn until kink_distance > KINK_MARGIN (1000 h), so no ±h step can cross a
    ReLU / leaky-ReLU / ELU kink, a change of maxout winner or an SVM hinge, and every
    error should be ~1e-9. Maxout runs with CASE_MAXOUT_PIECES = 3 pieces.
    Data depend only on (seed, combination), not on which combinations are asked for.

    Returns rows {"model", "loss", "activation", "param", "max_rel_error"}.
    """
    models = _choose("models", models, MODEL_TYPES)
    losses = _choose("losses", losses, tuple(LOSSES))
    activations = _choose("activations", activations, ACTIVATION_NAMES)

    rows = []
    for model_type, loss in itertools.product(models, losses):
        for activation in ("-",) if model_type == "linear" else activations:
            combo_key = (
                MODEL_TYPES.index(model_type),
                list(LOSSES).index(loss),
                ACTIVATION_NAMES.index(activation) + 1 if activation != "-" else 0,
            )
            model, X, y = _case(model_type, loss, activation, [seed, *combo_key])
            errors = check_model_gradients(model, X, y)
            for param, error in errors.items():
                rows.append({
                    "model": model_type,
                    "loss": loss,
                    "activation": activation,
                    "param": param,
                    "max_rel_error": error,
                })
    return rows


def _case(model_type, loss, activation, entropy, max_draws=100):
    """(model, X, y) for one combination, with X redrawn until it is clear of kinks."""
    rng = np.random.default_rng(entropy)
    hyper = dict(CASE_HIDDEN.get(model_type, {}), loss=loss, reg=CASE_REG, init="he")
    if activation != "-":
        hyper["activation"] = activation
    if activation == MAXOUT:
        hyper["maxout_pieces"] = CASE_MAXOUT_PIECES
    model = build_model(
        model_type, CASE_D, CASE_C, dtype="float64", seed=int(rng.integers(2**31)), **hyper
    )
    for name, value in model.params.items():
        if name.startswith("b"):  # non-zero biases make the check less special
            value[...] = 0.1 * rng.standard_normal(value.shape)
    y = rng.integers(CASE_C, size=CASE_N)
    for _ in range(max_draws):
        X = rng.standard_normal((CASE_N, CASE_D))
        if kink_distance(model, X, y) > KINK_MARGIN:
            return model, X, y
    raise RuntimeError(f"no kink-free data for {model_type}/{loss}/{activation}")


def _choose(name, value, choices):
    """value (a list of names) checked against choices; None means all of them."""
    if value is None:
        return tuple(choices)
    if isinstance(value, str):
        value = [value]
    for item in value:
        if item not in choices:
            raise ConfigError(f"{name}: expected names from {', '.join(choices)}, got {item!r}")
    return tuple(value)
