"""The model contract shared by every classifier, plus argument checks and weight init.

A model is a dict of parameters plus ``loss(X, y=None)``:

    X: (N, D)  ->  scores (N, C)                 when y is None
    X, y: (N,) ->  (loss: float, grads: dict)    grads keyed like params

``loss(X, y, grads_out=dest)`` hands each gradient to one destination object instead
(cs_nets.nn.grads_out: ``dest.weight``, ``dest.bias``, ``dest.put``) and returns
``dest.grads``; the default destination makes new arrays. The trainer's destination
updates each parameter as its gradient arrives, so a model hands over a parameter's
gradient only after its last use of that parameter in the call.
After ``loss(X, y)``, ``model.loss_parts`` is ``(data_loss, reg_loss)``, the two floats
that sum to the returned loss (the lecture's L = data loss + regularization); the
trainer records both per epoch. It costs nothing: the penalty is computed anyway.
The trainer knows nothing else about a model, so every model plugs into it.
Everything runs in ``model.dtype`` (float32 for training, float64 for gradient
checks): X is cast to it on entry (no copy when it already matches) and no
intermediate is allowed to upcast.
"""

import math
import numbers

import numpy as np

from cs_nets.errors import ArgumentError
from cs_nets.nn.losses import LOSSES

DTYPES = ("float32", "float64")  # float64 for gradient checks
SCORING_ROWS = 2000  # rows scored at once by predict (and by the input pipeline): 25 MB of float32 pixels
INIT_SCHEMES = ("he", "xavier")  # besides a plain float std


class Model:
    """Base class: holds ``params``, ``reg``, ``input_dim``, ``num_classes``, ``dtype``.

    Subclasses set ``model_type`` and ``HYPERPARAMS`` (the keywords build_model
    accepts), fill ``self.params`` and implement ``loss`` and ``hyperparams``.
    """

    model_type = ""
    HYPERPARAMS: tuple[str, ...] = ()

    def __init__(self, input_dim, num_classes, *, dtype, loss, reg, init):
        self.input_dim = check_int("input_dim", input_dim, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.dtype = check_dtype(dtype)
        self.loss_name = check_choice("loss", loss, LOSSES)
        self.reg = check_reg(reg)
        self.init = check_init(init)
        self.params = {}
        self.loss_parts = None  # (data_loss, reg_loss) of the last loss(X, y) call

    def loss(self, X, y=None, grads_out=None):
        """X: (N, D) -> scores (N, C) if y is None else (loss: float, grads: dict).

        grads_out: where the gradients go (cs_nets.nn.grads_out; default: new arrays).
        """
        raise NotImplementedError

    def hyperparams(self):
        """JSON-able keywords that make build_model rebuild this architecture."""
        raise NotImplementedError

    @classmethod
    def param_shapes(cls, input_dim, num_classes, **hyper):
        """{name: shape} of the params ``cls(input_dim, num_classes, **hyper)`` allocates.

        Computed from the architecture alone, so a size estimate can refuse a huge one
        before anything is allocated; __init__ allocates exactly these shapes.
        """
        raise NotImplementedError

    def predict(self, X, batch_size=SCORING_ROWS):
        """Predicted class per row. X: (N, D) -> (N,) int64, scores computed in chunks."""
        X = self.check_X(X)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        labels = np.empty(X.shape[0], dtype=np.int64)
        for start in range(0, X.shape[0], batch_size):
            stop = start + batch_size
            labels[start:stop] = self.loss(X[start:stop]).argmax(axis=1)
        return labels

    def load_params(self, params):
        """Copy arrays into ``self.params`` after checking names and shapes (keeps dtype)."""
        if set(params) != set(self.params):
            raise ArgumentError(
                f"params: expected keys {sorted(self.params)}, got {sorted(params)}"
            )
        for name, value in params.items():
            value = np.asarray(value)
            if value.shape != self.params[name].shape:
                raise ArgumentError(
                    f"params[{name!r}]: expected shape {self.params[name].shape}, got {value.shape}"
                )
            self.params[name][...] = value

    def check_X(self, X):
        """Return X as a (N, input_dim) array of ``self.dtype`` (no copy if it already is)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ArgumentError(f"X: expected shape (N, {self.input_dim}), got {X.shape}")
        return X.astype(self.dtype, copy=False)

    def loss_fn(self):
        """The (scores, y) -> (loss, dscores) function named by ``self.loss_name``."""
        return LOSSES[self.loss_name]

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams().items())
        return (
            f"{type(self).__name__}(input_dim={self.input_dim}, "
            f"num_classes={self.num_classes}, dtype={self.dtype.name}, {hyper})"
        )


def make_rng(seed):
    """The generator for random init: np.random.default_rng(seed), seed an int >= 0."""
    return np.random.default_rng(check_int("seed", seed, minimum=0))


def init_weight(rng, shape, init, dtype):
    """A (fan_in, fan_out) weight matrix ~ N(0, std²).

    init: a float std, "he" (std √(2/fan_in), for ReLU-like units) or "xavier"
    (std √(1/fan_in)). Drawn in float64 then cast, so a float32 and a float64 model
    built with the same seed hold the same weights up to rounding.
    """
    fan_in = shape[0]
    if init == "he":
        std = math.sqrt(2.0 / fan_in)
    elif init == "xavier":
        std = math.sqrt(1.0 / fan_in)
    else:
        std = float(init)
    return (std * rng.standard_normal(shape)).astype(dtype)


# --- argument checks: each raises ArgumentError naming the parameter, value and expectation


def check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ArgumentError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _is_nonnegative_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and math.isfinite(value) and float(value) >= 0)


def check_reg(value):
    if not _is_nonnegative_number(value):
        raise ArgumentError(f"reg: expected a finite number >= 0, got {value!r}")
    return float(value)


def check_init(value):
    if isinstance(value, str):
        return check_choice("init", value, INIT_SCHEMES)
    if not _is_nonnegative_number(value):
        raise ArgumentError(f"init: expected a std >= 0 or one of he, xavier, got {value!r}")
    return float(value)


def check_dtype(value):
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.name not in DTYPES:
        raise ArgumentError(f"dtype: expected one of {', '.join(DTYPES)}, got {value!r}")
    return dtype
