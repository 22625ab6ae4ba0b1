"""Linear classifier: scores = X W + b, trained with the SVM or the Softmax loss."""

import numpy as np

from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.losses import l2_penalty
from cs_nets.nn.models.base import Model, init_weight, make_rng


class LinearClassifier(Model):
    """params: W (D, C), b (C,). Loss "svm" (default) or "softmax"; reg * Σ W²."""

    model_type = "linear"
    HYPERPARAMS = ("loss", "reg", "init")

    def __init__(self, input_dim, num_classes, *, dtype="float32", seed=0,
                 loss="svm", reg=0.0, init=1e-3):
        super().__init__(input_dim, num_classes, dtype=dtype, loss=loss, reg=reg, init=init)
        rng = make_rng(seed)
        shapes = self.param_shapes(self.input_dim, self.num_classes)
        self.params = {
            "W": init_weight(rng, shapes["W"], self.init, self.dtype),
            "b": np.zeros(shapes["b"], dtype=self.dtype),
        }

    @classmethod
    def param_shapes(cls, input_dim, num_classes, **hyper):
        """{"W": (D, C), "b": (C,)}: what __init__ allocates (memory estimates ask it first)."""
        return {"W": (input_dim, num_classes), "b": (num_classes,)}

    def loss(self, X, y=None, grads_out=None):
        """X: (N, D) -> scores (N, C) if y is None else (loss, {"W": (D, C), "b": (C,)}).

        grads_out: where the gradients go (cs_nets.nn.grads_out; default: new arrays).
        """
        X = self.check_X(X)
        W, b = self.params["W"], self.params["b"]
        scores = X @ W
        scores += b
        if y is None:
            return scores

        data_loss, dscores = self.loss_fn()(scores, np.asarray(y))
        reg = self.reg  # a Python float (check_reg), so float32 gradients stay float32
        self.loss_parts = (data_loss, l2_penalty([W], reg))  # the trainer records both (curves)
        loss = data_loss + self.loss_parts[1]
        # No dX: X is data, not a parameter. X.T is a view, BLAS reads it transposed.
        grads = Gradients() if grads_out is None else grads_out
        grads.bias("b", dscores)                # db
        grads.weight("W", X.T, dscores, W, reg)  # dW = X.T @ dscores + 2 reg W
        return loss, grads.grads

    def hyperparams(self):
        return {"loss": self.loss_name, "reg": float(self.reg), "init": self.init}
