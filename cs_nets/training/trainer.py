"""The minibatch SGD loop: any model with ``params`` and ``loss(X, y, grads_out=None)``
(cs_nets.nn.models.base) plugs in.

Each epoch visits the training split in a fresh random order (no sampling with
replacement), then scores a fixed training subsample and the validation split.
The parameters of the best validation epoch are kept and restored at the end.

Each step: gather the batch into a kept buffer, one ``model.loss`` call whose backward
pass hands each gradient to the update rule, which updates that parameter at once
(cs_nets.training._fused_step: the rules of cs_nets.nn.optim without gradient arrays).
The gather is ``X_train.take(rows, axis=0, out=buffer)``: a float array's own, or with
``data.storage: uint8`` a ``cs_nets.data.storage.NormalizedRows``'s, which gathers the
uint8 pixels and normalizes them into the buffer there (the same values, bit for bit).

Everything the loop carries from one epoch to the next is a ``TrainState``
(cs_nets.training.state): parameters, best parameters, the update rule's buffers, the
random generator's state, history. ``on_epoch`` receives it after every epoch (the
run function saves it), and ``fit(..., state=saved)`` continues from it with
bit-identical results to a run that was never stopped.

Threads: the matrix products and the updates run in NumPy's BLAS, which uses every
core by default (the rest of a step is single-threaded NumPy). Set OMP_NUM_THREADS=1 or
OPENBLAS_NUM_THREADS=1 before starting Python when several trainings share the
machine (e.g. a sweep with -j 2 on 2 cores): a multi-threaded product waits for its
slowest thread, and on a busy machine that made epochs several times slower.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from cs_nets.config import OptimConfig, TrainConfig
from cs_nets.errors import ArgumentError
from cs_nets.nn.models.base import SCORING_ROWS
from cs_nets.nn.optim import learning_rate
from cs_nets.training._fused_step import FusedStep
from cs_nets.training.metrics import accuracy_of_views
from cs_nets.training.state import TrainState


@dataclass
class TrainResult:
    """What training did. ``status``: completed, early_stopped, diverged or interrupted."""

    history: list[dict] = field(default_factory=list)  # one metrics dict per finished epoch
    batch_losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (num_batches,)
    best_epoch: int = 0  # 1-based; 0 = no epoch finished, the initial parameters are kept
    best_val_accuracy: float = float("nan")
    status: str = "completed"
    message: str = ""
    train_seconds: float = 0.0


def accuracy(model, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of X (N, D) whose predicted class equals y (N,)."""
    if len(y) == 0:
        return float("nan")
    return float(np.mean(model.predict(X) == y))


def train_eval_rows(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """The fixed training rows scored as ``train_accuracy``: (min(size, n),) sorted indices.

    The trainer draws them first from its generator default_rng(seed); the run's
    summary calls this with a fresh default_rng(seed), so both score the same rows.
    """
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def image_side(dim: int) -> int:
    """S of rows holding S x S colour images (dim = 3 S S); ArgumentError when dim is not 3 times a square."""
    side = math.isqrt(dim // 3)
    if dim < 3 or 3 * side * side != dim:
        raise ArgumentError(f"train.hflip flips square colour images: rows of 3*S*S values, got {dim} values "
                            f"per row (features?)")
    return side


def _flip_half(batch: np.ndarray, rng: np.random.Generator, side: int = 32) -> None:
    """Mirror a random half of the images of batch (B, 3*S*S), S = side, left-right, in place."""
    images = batch.reshape(len(batch), 3, side, side)
    flip = rng.random(len(batch)) < 0.5
    images[flip] = images[flip, :, :, ::-1]


def _loss_split(parts: np.ndarray) -> dict:
    """{"train_data_loss", "train_reg_loss"}: epoch means of the (batches, 2) loss parts; None where unknown."""
    data, reg = (float(v) for v in parts.mean(axis=0))
    return {"train_data_loss": data if math.isfinite(data) else None,
            "train_reg_loss": reg if math.isfinite(reg) else None}


def fit(model, X_train, y_train, X_val, y_val, optim_config: OptimConfig, train_config: TrainConfig,
        seed: int = 0, progress: bool = True, on_epoch=None, state: TrainState | None = None,
        X_val_views: list[np.ndarray] | None = None) -> TrainResult:
    """Train `model` in place with minibatch SGD and return what happened.

    X_train: (N, D) float, or anything with its ``shape``, ``dtype``, ``X_train[rows]`` and
    ``X_train.take(rows, axis=0, out=..., mode="clip")`` (a NormalizedRows of uint8 images);
    y_train: (N,) int; X_val: (M, D), y_val: (M,).
    on_epoch: optional callable(metrics: dict, state: TrainState) after each epoch.
    state: a TrainState saved by an earlier call with the same model, data and
    configs; training continues after its last epoch.
    X_val_views: (M, D) inputs of other views of the validation images (their mirrors, the images
    moved: data.hflip_average, data.shift_average): each epoch's val_accuracy averages their scores
    with X_val's.
    Same seed, data and config -> bit-identical parameters, resumed or not.
    """
    n, dim = X_train.shape
    batch_size = min(train_config.batch_size, n)
    batches_per_epoch = math.ceil(n / batch_size)
    side = image_side(dim) if train_config.hflip else 0  # the images' side, from the row width D = 3 S S
    rng = np.random.default_rng(seed)
    eval_idx = train_eval_rows(n, train_config.train_eval_size, rng)
    X_eval, y_eval = X_train[eval_idx], y_train[eval_idx]

    step = FusedStep(model.params, optim_config.momentum, optim_config.nesterov)
    if state is None:
        state = TrainState.start(model.params, step.buffers())
    else:
        state.check_matches(model.params, step.buffers())
        state.restore_into(model.params, rng)
        step.load_buffers(state.rule_state)
    result = TrainResult(history=state.history, best_epoch=state.best_epoch,
                         best_val_accuracy=state.best_val_accuracy, train_seconds=state.train_seconds)
    batch_buf = np.empty((batch_size, dim), X_train.dtype)
    label_buf = np.empty(batch_size, y_train.dtype)
    show_bar = progress and sys.stderr.isatty()
    num_epochs = train_config.num_epochs

    try:
        for epoch in range(state.epoch, num_epochs):
            lr = learning_rate(optim_config.learning_rate, optim_config.schedule, epoch, num_epochs,
                               optim_config.lr_decay)
            order = rng.permutation(n)
            losses = np.empty(batches_per_epoch, np.float32)
            # the loss's two parts per batch (model.loss_parts; NaN for a model without them), for the curves
            parts = np.full((batches_per_epoch, 2), np.nan, np.float32)  # float32 as the batch losses
            bar = tqdm(total=batches_per_epoch, desc=f"epoch {epoch + 1}/{num_epochs}",
                       disable=not show_bar, leave=False, file=sys.stderr, unit="batch")
            start = time.perf_counter()
            for b in range(batches_per_epoch):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = batch_buf[:len(idx)], label_buf[:len(idx)]
                # mode="clip": idx is a permutation slice, always in range; the default
                # "raise" gathers into a temporary first and then copies it into out.
                X_train.take(idx, axis=0, out=xb, mode="clip")
                np.take(y_train, idx, out=yb, mode="clip")
                if train_config.hflip:
                    _flip_half(xb, rng, side)
                # the backward pass updates each parameter as its gradient arrives
                loss, _ = model.loss(xb, yb, grads_out=step.begin(lr))
                if not math.isfinite(loss):
                    result.status = "diverged"
                    result.message = (f"the loss became {loss} in epoch {epoch + 1}; "
                                      f"try a smaller learning rate (optim.learning_rate={lr:g} now)")
                    state.batch_losses.append(losses[:b])
                    break
                step.end()
                losses[b] = loss
                parts[b] = getattr(model, "loss_parts", None) or (math.nan, math.nan)
                if show_bar and (b % 10 == 0 or b == batches_per_epoch - 1):
                    bar.set_postfix(loss=f"{losses[:b + 1].mean():.4f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)
            seconds = time.perf_counter() - start
            bar.close()
            result.train_seconds += seconds
            if result.status == "diverged":
                break

            metrics = {
                "epoch": epoch + 1,
                "train_loss": float(losses.mean()),
                **_loss_split(parts),
                "train_accuracy": accuracy(model, X_eval, y_eval),
                "val_accuracy": (accuracy_of_views(model, [X_val, *X_val_views], y_val, SCORING_ROWS)
                                 if X_val_views else accuracy(model, X_val, y_val)),
                "lr": lr,
                "seconds": seconds,
            }
            # the rule may have replaced a buffer (the course rules return new arrays for biases)
            state.rule_state = step.buffers()
            state.end_epoch(metrics, losses, model.params, rng, result.train_seconds)
            result.best_epoch, result.best_val_accuracy = state.best_epoch, state.best_val_accuracy
            if on_epoch is not None:
                on_epoch(metrics, state)
            patience = train_config.patience
            if patience is not None and state.epochs_since_best >= patience:
                result.status = "early_stopped"
                result.message = f"no better validation accuracy for {patience} epochs; stopped after epoch {epoch + 1}"
                break
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP turned into it (cs_nets.runs.signals)
        result.status = "interrupted"
        result.message = f"interrupted; keeping the best epoch so far ({result.best_epoch})"

    for name, p in model.params.items():
        p[...] = state.best_params[name]
    result.batch_losses = state.all_batch_losses()
    return result
