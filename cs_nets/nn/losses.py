"""Classification losses: ``(scores, y) -> (loss, dscores)``, averaged over the batch.

    scores:  (N, C) float32/float64 class scores
    y:       (N,) integer labels in [0, C)
    loss:    Python float, the mean data loss over the N examples
    dscores: (N, C) dL/dscores, same dtype as ``scores``

Each vectorized loss has a plain-loop twin (``*_loop``) that spells out the formula
one example and one class at a time; tests hold the two equal.

Regularization convention (used by every model): R(W) = reg * Σ W² summed over the
weight matrices only (never biases), so dR/dW = 2 * reg * W. There is no 1/2 factor.
"""

import math

import numpy as np

from cs_nets.errors import ArgumentError

SVM_DELTA = 1.0  # the hinge margin: the correct class should win by at least 1


def check_scores_labels(scores, y):
    """Raise ArgumentError unless scores is (N, C) and y is (N,) integer labels in [0, C)."""
    if scores.ndim != 2:
        raise ArgumentError(f"scores: expected a 2-D (N, C) array, got shape {scores.shape}")
    if y.ndim != 1 or y.shape[0] != scores.shape[0]:
        raise ArgumentError(f"y: expected shape ({scores.shape[0]},) to match scores, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ArgumentError(f"y: expected integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
        raise ArgumentError(
            f"y: expected labels in [0, {scores.shape[1]}), got range [{y.min()}, {y.max()}]"
        )


def svm_loss(scores, y):
    """Multiclass SVM (hinge) loss, vectorized.

    L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + 1). A margin of exactly 0 contributes
    neither loss nor gradient (the subgradient 0 is used at the hinge).

    scores: (N, C), y: (N,) -> (loss: float, dscores: (N, C) like scores)
    """
    check_scores_labels(scores, y)
    n = scores.shape[0]
    rows = np.arange(n)
    correct = scores[rows, y][:, None]  # (N, 1)
    margins = scores - correct
    margins += SVM_DELTA
    margins[rows, y] = 0  # the correct class is not in the sum
    np.maximum(margins, 0, out=margins)
    loss = float(margins.sum()) / n

    # Each positive margin adds +1 to its class and -1 to the correct class.
    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= n
    return loss, dscores


def softmax_loss(scores, y):
    """Softmax cross-entropy loss, vectorized and numerically stable.

    L_i = -log(e^{s_{y_i}} / Σ_j e^{s_j}). Scores are shifted by their row max first,
    which leaves the probabilities unchanged but keeps every exponent <= 0.

    scores: (N, C), y: (N,) -> (loss: float, dscores: (N, C) like scores)
    """
    check_scores_labels(scores, y)
    n = scores.shape[0]
    rows = np.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    correct = shifted[rows, y]  # fancy indexing copies: safe from the in-place exp
    probs = np.exp(shifted, out=shifted)
    sums = probs.sum(axis=1)
    # log-sum-exp of the shifted scores minus the correct shifted score
    loss = float(np.log(sums).sum() - correct.sum()) / n

    # dL_i/ds_j = p_j - [j == y_i]
    probs /= sums[:, None]
    probs[rows, y] -= 1
    probs /= n
    flush_subnormals(probs)
    return loss, probs


def svm_loss_loop(scores, y):
    """Reference SVM loss with explicit loops (slow, for reading and testing)."""
    check_scores_labels(scores, y)
    num_examples, num_classes = scores.shape
    loss = 0.0
    dscores = np.zeros_like(scores)
    for i in range(num_examples):
        correct_score = scores[i, y[i]]
        for j in range(num_classes):
            if j == y[i]:
                continue
            margin = scores[i, j] - correct_score + SVM_DELTA
            if margin > 0:
                loss += margin
                dscores[i, j] += 1
                dscores[i, y[i]] -= 1
    loss /= num_examples
    dscores /= num_examples
    return float(loss), dscores


def softmax_loss_loop(scores, y):
    """Reference softmax loss with explicit loops (slow, for reading and testing)."""
    check_scores_labels(scores, y)
    num_examples, num_classes = scores.shape
    loss = 0.0
    dscores = np.zeros_like(scores)
    for i in range(num_examples):
        row_max = max(scores[i, j] for j in range(num_classes))
        exps = [math.exp(scores[i, j] - row_max) for j in range(num_classes)]
        total = sum(exps)
        loss += -math.log(exps[y[i]] / total)
        for j in range(num_classes):
            probability = exps[j] / total
            dscores[i, j] = probability - (1 if j == y[i] else 0)
    loss /= num_examples
    dscores /= num_examples
    return float(loss), dscores


def l2_penalty(weights, reg):
    """reg * Σ W² over the given weight matrices, as a Python float.

    np.vdot sums the squares without allocating a W * W temporary.
    """
    if reg == 0:
        return 0.0
    return float(reg) * sum(float(np.vdot(W, W)) for W in weights)


def flush_subnormals(dscores):
    """Set entries smaller than the smallest normal float (1.2e-38 in float32) to 0, in place.

    A softmax probability e^(s_j - max) below that is subnormal: it changes no sum,
    but a matrix product with subnormal inputs runs up to 100x slower (the CPU
    handles each one in microcode), and large scores produce many of them.
    """
    dscores[np.abs(dscores) < np.finfo(dscores.dtype).tiny] = 0
    return dscores


LOSSES = {"svm": svm_loss, "softmax": softmax_loss}
