"""Fully connected network of any depth, built from layer forward/backward pairs.

    {affine -> activation} x len(hidden_dims)  ->  affine  ->  loss

The modular counterpart of TwoLayerNet: hidden_dims=[H] is the same network
(same params, loss and grads); hidden_dims=[H1, H2] is the lecture's 3-layer net.
activation="maxout": each hidden unit is the max of maxout_pieces = k affine maps,
so hidden layer l has W (H_{l-1}, k*H_l) and b (k*H_l,) (see activations.maxout_forward).
"""

import numbers

import numpy as np

from cs_nets.errors import ArgumentError
from cs_nets.nn.activations import ACTIVATION_NAMES, MAXOUT, MAXOUT_PIECES
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.layers import (
    affine_activation_backward,
    affine_activation_forward,
    affine_backward,
    affine_forward,
)
from cs_nets.nn.losses import l2_penalty
from cs_nets.nn.models.base import Model, check_choice, check_int, init_weight, make_rng


class FullyConnectedNet(Model):
    """params: W1 (D, H1), b1 (H1,), ..., WL (H_{L-1}, C), bL (C,), L = len(hidden_dims) + 1.

    With maxout, hidden layer l is k = maxout_pieces times wider: W_l (H_{l-1}, k*H_l), b_l (k*H_l,).
    """

    model_type = "fc_net"
    HYPERPARAMS = ("hidden_dims", "activation", "maxout_pieces", "loss", "reg", "init")

    def __init__(self, input_dim, num_classes, *, dtype="float32", seed=0, hidden_dims=(100,),
                 activation="relu", maxout_pieces=MAXOUT_PIECES, loss="softmax", reg=0.0, init="he"):
        super().__init__(input_dim, num_classes, dtype=dtype, loss=loss, reg=reg, init=init)
        self.hidden_dims = check_hidden_dims(hidden_dims)
        self.activation = check_choice("activation", activation, ACTIVATION_NAMES)
        self.maxout_pieces = check_int("maxout_pieces", maxout_pieces, minimum=1)
        self.num_layers = len(self.hidden_dims) + 1
        rng = make_rng(seed)
        shapes = self.param_shapes(self.input_dim, self.num_classes, self.hidden_dims, activation=self.activation,
                                   maxout_pieces=self.maxout_pieces)
        for name, shape in shapes.items():
            if name.startswith("W"):
                self.params[name] = init_weight(rng, shape, self.init, self.dtype)
            else:
                self.params[name] = np.zeros(shape, dtype=self.dtype)

    @classmethod
    def param_shapes(cls, input_dim, num_classes, hidden_dims=(100,), activation="relu",
                     maxout_pieces=MAXOUT_PIECES, **hyper):
        """W1 (D, H1), b1 (H1,), ..., WL (H_{L-1}, C), bL (C,), layer by layer: what __init__ allocates.

        Maxout: a hidden layer's W and b are k = maxout_pieces times wider (k*H_l columns).
        """
        dims = (input_dim, *(int(h) for h in hidden_dims), num_classes)
        widen = check_int("maxout_pieces", maxout_pieces, minimum=1) if activation == MAXOUT else 1
        shapes = {}
        for layer in range(1, len(dims)):
            width = dims[layer] * (widen if layer < len(dims) - 1 else 1)  # the output layer is plain affine
            shapes[f"W{layer}"] = (dims[layer - 1], width)
            shapes[f"b{layer}"] = (width,)
        return shapes

    def loss(self, X, y=None, grads_out=None):
        """X: (N, D) -> scores (N, C) if y is None else (loss, grads keyed like params).

        grads_out: where the gradients go (cs_nets.nn.grads_out; default: new arrays).
        """
        X = self.check_X(X)
        L = self.num_layers

        out, caches = X, []
        for layer in range(1, L):
            W, b = self.params[f"W{layer}"], self.params[f"b{layer}"]
            out, cache = affine_activation_forward(out, W, b, self.activation, pieces=self.maxout_pieces)
            caches.append(cache)
        scores, last_cache = affine_forward(out, self.params[f"W{L}"], self.params[f"b{L}"])
        if y is None:
            return scores

        data_loss, dscores = self.loss_fn()(scores, np.asarray(y))
        reg = self.reg  # a Python float (check_reg), so float32 gradients stay float32
        weights = [self.params[f"W{layer}"] for layer in range(1, L + 1)]
        self.loss_parts = (data_loss, l2_penalty(weights, reg))  # the trainer records both (curves)
        loss = data_loss + self.loss_parts[1]

        grads = Gradients() if grads_out is None else grads_out
        # each layer's backward adds its L2 term 2 reg W; the first layer's input is X, which needs no gradient
        dout, _, _ = affine_backward(dscores, last_cache, need_dx=L > 1, grads=grads,
                                     names=(f"W{L}", f"b{L}"), reg=reg)
        for layer in range(L - 1, 0, -1):
            dout, _, _ = affine_activation_backward(dout, caches[layer - 1], need_dx=layer > 1, grads=grads,
                                                    names=(f"W{layer}", f"b{layer}"), reg=reg)
        return loss, grads.grads

    def hyperparams(self):
        hyper = {
            "hidden_dims": list(self.hidden_dims),
            "activation": self.activation,
            "loss": self.loss_name,
            "reg": float(self.reg),
            "init": self.init,
        }
        if self.activation == MAXOUT:  # only then does it shape the model
            hyper["maxout_pieces"] = self.maxout_pieces
        return hyper


def check_hidden_dims(value):
    """hidden_dims as a tuple of ints >= 1 (an empty list means a linear softmax/SVM)."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in value
    )
    if not ok:
        raise ArgumentError(f"hidden_dims: expected a list of integers >= 1, got {value!r}")
    return tuple(int(h) for h in value)
