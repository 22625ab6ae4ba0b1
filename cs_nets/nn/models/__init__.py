"""The classifiers and ``build_model``, the one way the trainer and CLI create them."""

from cs_nets.errors import ArgumentError
from cs_nets.nn.models.base import Model
from cs_nets.nn.models.fc_net import FullyConnectedNet
from cs_nets.nn.models.linear import LinearClassifier
from cs_nets.nn.models.two_layer import TwoLayerNet

MODEL_CLASSES: dict[str, type[Model]] = {
    "linear": LinearClassifier,
    "two_layer": TwoLayerNet,
    "fc_net": FullyConnectedNet,
}
MODEL_TYPES = tuple(MODEL_CLASSES)


def build_model(model_type, input_dim, num_classes, *, dtype="float32", seed=0, **hyper):
    """A new model with random weights from np.random.default_rng(seed).

    hyper: the model's hyperparameters (see each class's HYPERPARAMS and defaults):
      linear:    loss="svm", reg=0.0, init=1e-3
      two_layer: hidden_dim=100, activation="relu", loss="softmax", reg=0.0, init="he"
      fc_net:    hidden_dims=(100,), activation="relu", loss="softmax", reg=0.0, init="he"
    init is a std (float) or "he" / "xavier". Unknown keywords raise ArgumentError.
    """
    if not isinstance(model_type, str) or model_type not in MODEL_CLASSES:
        raise ArgumentError(
            f"model_type: expected one of {', '.join(MODEL_TYPES)}, got {model_type!r}"
        )
    cls = MODEL_CLASSES[model_type]
    unknown = sorted(set(hyper) - set(cls.HYPERPARAMS))
    if unknown:
        raise ArgumentError(
            f"{unknown[0]}: unknown hyperparameter for model {model_type!r} "
            f"(expected one of {', '.join(sorted(cls.HYPERPARAMS))})"
        )
    return cls(input_dim, num_classes, dtype=dtype, seed=seed, **hyper)


__all__ = [
    "MODEL_TYPES",
    "MODEL_CLASSES",
    "Model",
    "LinearClassifier",
    "TwoLayerNet",
    "FullyConnectedNet",
    "build_model",
]
