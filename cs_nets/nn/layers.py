"""Layers as forward/backward pairs with caches (the modular form of backprop).

``*_forward`` returns ``(out, cache)``; ``*_backward`` takes the upstream gradient
``dout`` and that cache and returns the gradients of the forward's inputs.
Stacking pairs and calling the backwards in reverse order is all ``fc_net`` does.
"""

from cs_nets.nn.activations import ACTIVATIONS, MAXOUT, MAXOUT_PIECES, maxout_backward, maxout_forward
from cs_nets.nn.grads_out import Gradients


def affine_forward(x, w, b):
    """out = x @ w + b.

    x: (N, D), w: (D, M), b: (M,) -> out: (N, M), cache: (x, w)
    """
    out = x @ w
    out += b
    return out, (x, w)


def affine_backward(dout, cache, need_dx=True, grads=None, names=("w", "b"), reg=0.0):
    """Gradients of out = x @ w + b.

    dout: (N, M) upstream gradient -> dx: (N, D) or None, dw: (D, M), db: (M,)
    need_dx=False skips dx (for a first layer, whose input is data, not a parameter).
    reg: adds the L2 term 2 reg w to dw (the gradient of reg * Σ w²; 0: none).
    grads: where dw and db go, under `names` (cs_nets.nn.grads_out; default: a new
    Gradients, so dw and db are new arrays). Another destination may update w in place
    and return None for dw and db, so w is not used after dw is handed over.
    """
    x, w = cache
    dx = dout @ w.T if need_dx else None  # w.T is a view; matmul reads it transposed
    grads = Gradients() if grads is None else grads
    db = grads.bias(names[1], dout)  # before dw: a big dw product evicts dout from cache
    dw = grads.weight(names[0], x.T, dout, w, reg)  # x.T @ dout + 2 reg w
    return dx, dw, db


def activation_forward(x, name, out=None, pieces=MAXOUT_PIECES):
    """Activation ``name`` (see cs_nets.nn.activations). x: (N, H) -> (out, cache).

    out=x computes in place (x is overwritten), as NumPy's ``out=``. "maxout" narrows
    x: (N, pieces*H) to (N, H) and ignores out (its output never fits in x).
    """
    if name == MAXOUT:
        out, act_cache = maxout_forward(x, pieces)
    else:
        forward, _ = ACTIVATIONS[name]
        out, act_cache = forward(x, out=out)
    return out, (name, act_cache)


def activation_backward(dout, cache):
    """dx = dout * f'(x) for the activation cached by activation_forward. dout: (N, H)."""
    name, act_cache = cache
    if name == MAXOUT:
        return maxout_backward(dout, act_cache)
    _, backward = ACTIVATIONS[name]
    return backward(dout, act_cache)


def affine_activation_forward(x, w, b, name, pieces=MAXOUT_PIECES):
    """An affine layer followed by an activation: the hidden layer of an MLP.

    With "maxout", w: (D, pieces*H) and b: (pieces*H,) hold the pieces' affine maps (see maxout_forward).
    """
    z, affine_cache = affine_forward(x, w, b)
    a, act_cache = activation_forward(z, name, out=z, pieces=pieces)  # z is ours and not cached: reuse it
    return a, (affine_cache, act_cache)


def affine_activation_backward(dout, cache, need_dx=True, grads=None, names=("w", "b"), reg=0.0):
    """Backward of affine_activation_forward -> (dx or None, dw, db); grads, names, reg as affine_backward."""
    affine_cache, act_cache = cache
    dz = activation_backward(dout, act_cache)
    return affine_backward(dz, affine_cache, need_dx=need_dx, grads=grads, names=names, reg=reg)
