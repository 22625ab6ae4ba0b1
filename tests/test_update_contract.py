"""The update-inside-backward contract, checked for every model the registry knows.

The trainer's fused step (cs_nets.training._fused_step) updates a parameter in place as
soon as the model hands over its gradient. That is only right if the model has made
its last use of the parameter by then. A model that hands over ``W2`` one line early
still passes a gradient check (its gradients are right when nobody updates anything),
yet trains a different network. Two checks catch it:

- poisoned hand-over: a destination that overwrites each parameter with NaN the moment
  its gradient arrives; any later use turns another gradient (or the loss) into NaN;
- equality: the fused step equals the course's update rules (cs_nets.nn.optim) applied
  to the model's own plain gradients, in float64, for every rule with L2.

Both iterate cs_nets.nn.models.MODEL_CLASSES (the registry's implementation table)
with every activation, not a hand-written list, and both are shown to fail for a
model that breaks the contract.
"""

import numpy as np
import pytest

from cs_nets import registry
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.models import MODEL_CLASSES, build_model
from cs_nets.nn.models.two_layer import TwoLayerNet
from cs_nets.nn.optim import update_rule
from cs_nets.training._fused_step import FusedStep

D, C, N = 11, 4, 16
# The smallest hyperparameters that give each model type every layer it can have.
ARCHITECTURES = {"linear": [{}], "two_layer": [{"hidden_dim": 7}], "fc_net": [{"hidden_dims": [7, 5]}]}
RULES = [(0.0, False), (0.9, False), (0.9, True)]  # sgd, momentum, nesterov


def registry_cases():
    """(model type, hyper) for every model in the implementation table x every activation it takes."""
    assert set(MODEL_CLASSES) == set(registry.MODEL_TYPES) == set(ARCHITECTURES)
    for model_type, cls in MODEL_CLASSES.items():
        for hyper in ARCHITECTURES[model_type]:
            if "activation" in cls.HYPERPARAMS:
                for activation in registry.ACTIVATIONS:
                    yield model_type, {**hyper, "activation": activation}
            else:
                yield model_type, hyper


CASES = list(registry_cases())
IDS = [f"{t}-{h.get('activation', '')}" for t, h in CASES]


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.integers(C, size=N)


class PoisonedHandOver(Gradients):
    """Keeps each gradient, then fills its parameter with NaN: a later use of it shows."""

    def __init__(self, params):
        super().__init__()
        self.params = params

    def weight(self, name, a, b, W, reg=0.0):
        grad = super().weight(name, a, b, W, reg)
        W[...] = np.nan
        return grad

    def bias(self, name, dz):
        grad = super().bias(name, dz)
        self.params[name][...] = np.nan
        return grad

    def put(self, name, dw):
        grad = super().put(name, dw.copy())
        self.params[name][...] = np.nan
        return grad


def assert_hands_over_after_last_use(model_type, hyper, cls=None):
    """AssertionError if the model uses a parameter after handing over its gradient."""
    model = build_model(model_type, D, C, dtype="float64", seed=3, reg=0.1, loss="softmax", **hyper)
    if cls is not None:  # a variant of the model class with the same parameters
        variant = cls(D, C, dtype="float64", seed=3, reg=0.1, loss="softmax", **hyper)
        variant.load_params(model.params)
        model = variant
    X, y = data()
    kept = {k: v.copy() for k, v in model.params.items()}
    expected_loss, expected = model.loss(X, y)
    destination = PoisonedHandOver(model.params)
    loss, grads = model.loss(X, y, grads_out=destination)
    model.params.update({k: v for k, v in kept.items()})
    assert set(grads) == set(model.params), "every parameter's gradient is handed over"
    assert np.isfinite(loss) and loss == pytest.approx(expected_loss, rel=1e-12)
    for name, grad in grads.items():
        assert np.isfinite(grad).all(), f"{name}: a parameter was used after its gradient was handed over"
        np.testing.assert_allclose(grad, expected[name], rtol=1e-12, atol=1e-14, err_msg=name)


def assert_fused_equals_plain_rules(model_type, hyper, momentum, nesterov, cls=None, steps=4):
    """The trainer's fused step against rule(w, dw, config) on the plain gradients, float64."""
    def make():
        model = build_model(model_type, D, C, dtype="float64", seed=5, reg=0.05, loss="softmax", **hyper)
        if cls is not None:
            variant = cls(D, C, dtype="float64", seed=5, reg=0.05, loss="softmax", **hyper)
            variant.load_params(model.params)
            model = variant
        return model

    fused, plain = make(), make()
    step = FusedStep(fused.params, momentum=momentum, nesterov=nesterov)
    rule = update_rule(momentum, nesterov)
    configs = {name: {"learning_rate": 0.05, "momentum": momentum} for name in plain.params}
    for t in range(steps):
        X, y = data(seed=10 + t)
        fused.loss(X, y, grads_out=step.begin(0.05))
        step.end()
        _, grads = plain.loss(X, y)
        for name, w in plain.params.items():
            next_w, configs[name] = rule(w, grads[name], configs[name])
            w[...] = next_w
    for name in plain.params:
        np.testing.assert_allclose(fused.params[name], plain.params[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("model_type, hyper", CASES, ids=IDS)
def test_every_model_hands_over_each_gradient_after_its_last_use(model_type, hyper):
    assert_hands_over_after_last_use(model_type, hyper)


@pytest.mark.parametrize("momentum, nesterov", RULES, ids=["sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("model_type, hyper", CASES, ids=IDS)
def test_every_model_trains_the_same_fused_and_with_the_plain_rules(model_type, hyper, momentum, nesterov):
    assert_fused_equals_plain_rules(model_type, hyper, momentum, nesterov)


class EarlyW2TwoLayerNet(TwoLayerNet):
    """The two-layer net with one line moved: W2's gradient handed over before W2 is used
    for grad_h1. Its gradients are right (a gradient check passes), its training is not."""

    def loss(self, X, y=None, grads_out=None):
        if y is None:
            return super().loss(X)
        X = self.check_X(X)
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        from cs_nets.nn.activations import ACTIVATIONS
        from cs_nets.nn.losses import l2_penalty

        act_forward, act_backward = ACTIVATIONS[self.activation]
        z1 = X @ W1 + b1
        h1, act_cache = act_forward(z1)
        scores = h1 @ W2 + b2
        data_loss, grad_scores = self.loss_fn()(scores, np.asarray(y))
        loss = data_loss + l2_penalty([W1, W2], self.reg)
        grads = Gradients() if grads_out is None else grads_out
        grads.bias("b2", grad_scores)
        grads.weight("W2", h1.T, grad_scores, W2, self.reg)  # too early: W2 is used on the next line
        grad_h1 = grad_scores @ W2.T
        grad_z1 = act_backward(grad_h1, act_cache)
        grads.bias("b1", grad_z1)
        grads.weight("W1", X.T, grad_z1, W1, self.reg)
        return loss, grads.grads


def test_the_early_w2_model_passes_a_gradient_check_but_fails_both_contract_checks():
    from cs_nets.nn.gradcheck import check_model_gradients

    model = EarlyW2TwoLayerNet(D, C, dtype="float64", seed=3, hidden_dim=7, reg=0.1)
    X, y = data()
    errors = check_model_gradients(model, X, y)
    assert max(errors.values()) < 1e-6  # gradients alone look right
    with pytest.raises(AssertionError, match="used after its gradient was handed over"):
        assert_hands_over_after_last_use("two_layer", {"hidden_dim": 7}, cls=EarlyW2TwoLayerNet)
    with pytest.raises(AssertionError, match="W1"):
        assert_fused_equals_plain_rules("two_layer", {"hidden_dim": 7}, 0.9, False, cls=EarlyW2TwoLayerNet)
