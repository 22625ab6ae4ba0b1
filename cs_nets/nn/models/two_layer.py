"""Two-layer network written as flat, staged backprop (CS231n lecture 4, "Flat Backprop").

    forward:  z1 = X W1 + b1  ->  h1 = f(z1)  ->  scores = h1 W2 + b2  ->  loss
    backward: the same stages in reverse, each gradient = upstream * local

Every intermediate has a name, so each line of the backward pass reads as one
application of the chain rule. fc_net builds the same network from layer pairs.
"""

import numpy as np

from cs_nets.nn.activations import ACTIVATION_NAMES, ACTIVATIONS, MAXOUT, MAXOUT_PIECES, maxout_backward, maxout_forward
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.losses import l2_penalty
from cs_nets.nn.models.base import Model, check_choice, check_int, init_weight, make_rng


class TwoLayerNet(Model):
    """affine -> activation -> affine -> loss.

    params: W1 (D, H), b1 (H,), W2 (H, C), b2 (C,). Biases start at zero.
    With activation="maxout": W1 (D, k*H), b1 (k*H,), k = maxout_pieces (activations.maxout_forward).
    """

    model_type = "two_layer"
    HYPERPARAMS = ("hidden_dim", "activation", "maxout_pieces", "loss", "reg", "init")

    def __init__(self, input_dim, num_classes, *, dtype="float32", seed=0, hidden_dim=100,
                 activation="relu", maxout_pieces=MAXOUT_PIECES, loss="softmax", reg=0.0, init="he"):
        super().__init__(input_dim, num_classes, dtype=dtype, loss=loss, reg=reg, init=init)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, minimum=1)
        self.activation = check_choice("activation", activation, ACTIVATION_NAMES)
        self.maxout_pieces = check_int("maxout_pieces", maxout_pieces, minimum=1)
        rng = make_rng(seed)
        shapes = self.param_shapes(self.input_dim, self.num_classes, hidden_dim=self.hidden_dim,
                                   activation=self.activation, maxout_pieces=self.maxout_pieces)
        self.params = {  # drawn in this order: W1, then W2 (the seed's stream)
            "W1": init_weight(rng, shapes["W1"], self.init, self.dtype),
            "b1": np.zeros(shapes["b1"], dtype=self.dtype),
            "W2": init_weight(rng, shapes["W2"], self.init, self.dtype),
            "b2": np.zeros(shapes["b2"], dtype=self.dtype),
        }

    @classmethod
    def param_shapes(cls, input_dim, num_classes, hidden_dim=100, activation="relu",
                     maxout_pieces=MAXOUT_PIECES, **hyper):
        """W1 (D, H), b1 (H,), W2 (H, C), b2 (C,): what __init__ allocates (memory estimates ask it first).

        Maxout: W1 (D, k*H), b1 (k*H,) with k = maxout_pieces.
        """
        D, H, C = input_dim, int(hidden_dim), num_classes
        K = check_int("maxout_pieces", maxout_pieces, minimum=1) if activation == MAXOUT else 1
        return {"W1": (D, K * H), "b1": (K * H,), "W2": (H, C), "b2": (C,)}

    def loss(self, X, y=None, grads_out=None):
        """X: (N, D) -> scores (N, C) if y is None else (loss, grads keyed like params).

        grads_out: where the gradients go (cs_nets.nn.grads_out; default: new arrays).
        """
        X = self.check_X(X)
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        maxout = self.activation == MAXOUT

        # ---- forward pass: compute and name every intermediate
        z1 = X @ W1                                 # (N, H) hidden pre-activation; maxout: (N, k*H), k per unit
        z1 += b1
        if maxout:
            h1, act_cache = maxout_forward(z1, self.maxout_pieces)  # (N, H): each unit's largest piece
        else:
            act_forward, act_backward = ACTIVATIONS[self.activation]
            h1, act_cache = act_forward(z1, out=z1)  # (N, H) hidden activation (z1 reused)
        scores = h1 @ W2                            # (N, C)
        scores += b2
        if y is None:
            return scores
        data_loss, grad_scores = self.loss_fn()(scores, np.asarray(y))
        reg = self.reg  # a Python float (check_reg), so float32 gradients stay float32
        self.loss_parts = (data_loss, l2_penalty([W1, W2], reg))  # the trainer records both (curves)
        loss = data_loss + self.loss_parts[1]

        # ---- backward pass: reverse order, grad = upstream * local; each weight's
        # gradient adds the L2 term 2 reg W of reg * (ΣW1² + ΣW2²)
        grads = Gradients() if grads_out is None else grads_out  # receives grad_W2, grad_b2, ...
        # scores = h1 W2 + b2
        grad_h1 = grad_scores @ W2.T                # local grad wrt h1 is W2 (W2's last use)
        grads.bias("b2", grad_scores)               # local grad wrt b2 is 1 per row
        grads.weight("W2", h1.T, grad_scores, W2, reg)  # grad_W2 = h1.T @ grad_scores + 2 reg W2
        # h1 = f(z1)
        if maxout:
            grad_z1 = maxout_backward(grad_h1, act_cache)  # (N, k*H): routed to each unit's winning piece
        else:
            grad_z1 = act_backward(grad_h1, act_cache, out=grad_h1)  # local grad f'(z1), in place
        # z1 = X W1 + b1 (no grad wrt X: it is data)
        grads.bias("b1", grad_z1)                   # first: the W1 product evicts grad_z1 from cache
        grads.weight("W1", X.T, grad_z1, W1, reg)   # grad_W1 = X.T @ grad_z1 + 2 reg W1: local grad is X

        return loss, grads.grads

    def hyperparams(self):
        hyper = {
            "hidden_dim": self.hidden_dim,
            "activation": self.activation,
            "loss": self.loss_name,
            "reg": float(self.reg),
            "init": self.init,
        }
        if self.activation == MAXOUT:  # only then does it shape the model
            hyper["maxout_pieces"] = self.maxout_pieces
        return hyper
