"""Training curves: loss per batch and per epoch (split into data loss and regularization), accuracy per epoch."""

import numpy as np

from cs_nets.errors import CsNetsError
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure

WIDTH_PX, HEIGHT_PX = 1000, 450
SMOOTH_FRACTION = 0.02  # the EMA averages over about 2% of the run


def ema(values, beta):
    """Bias-corrected exponential moving average (as TensorBoard smooths).

    Inputs: values (N,) floats; beta in [0, 1), the weight of the past.
    Returns (N,) float64. Without the bias correction the first points would be
    pulled towards 0. A non-finite value gives NaN there (a gap in the line) and
    is left out of the average, which carries on after it.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full_like(values, np.nan)
    avg, weight = 0.0, 0.0
    for i, v in enumerate(values):
        if np.isfinite(v):
            avg = beta * avg + (1.0 - beta) * v
            weight = beta * weight + (1.0 - beta)
            out[i] = avg / weight
    return out


def smoothing_beta(num_points):
    """EMA weight whose span is ~2% of ``num_points`` (0, no smoothing, below 100)."""
    span = max(1.0, SMOOTH_FRACTION * num_points)
    return 1.0 - 1.0 / span


def plot_curves(metrics, batch_losses, path, title=None, chance_loss=None):
    """Plot the loss and the accuracies of one training run and write a PNG.

    Inputs:
    - metrics: per-epoch dicts with keys epoch, train_loss, train_accuracy,
      val_accuracy (metrics.jsonl rows); a missing or None value is not drawn.
    - batch_losses: (num_batches,) training loss of every minibatch in order, or
      None / empty.
    - path: PNG to write; title: figure title.
    - chance_loss: the data loss of a model that knows nothing, drawn as a dashed
      line (ln C for the Softmax loss over C classes; None: not drawn).

    Left panel: batch losses as a faint line, their EMA as a solid line, and each
    epoch's mean train loss as a marker in the middle of that epoch. The x axis
    is in epochs (batch i ends at (i + 1) / batches_per_epoch), so both panels line
    up and a partial last epoch shows as such; with no metrics it is the batch
    number. Where the rows hold train_data_loss and train_reg_loss, the lecture's
    L = data loss + regularization is drawn as its two parts too (the sum is the
    orange total): the Softmax data loss starts near chance_loss = ln C, whatever the
    L2 term adds. Right panel: train and validation accuracy per epoch, the best
    validation accuracy in the legend.
    Size: 1000x450 px. Returns the path written.
    """
    rows = _check_metrics(metrics)
    losses = np.zeros(0) if batch_losses is None else np.asarray(batch_losses, dtype=np.float64)
    if losses.ndim != 1:
        raise CsNetsError(f"batch_losses must be 1-D (num_batches,), got shape {losses.shape}")
    if not rows and losses.size == 0:
        raise CsNetsError("nothing to plot: no epoch metrics and no batch losses")

    plt = require_matplotlib()
    fig = new_figure(plt, WIDTH_PX, HEIGHT_PX)
    if title:
        fig.suptitle(title, fontsize=12)
    ax_loss, ax_acc = fig.subplots(1, 2)
    _draw_loss(ax_loss, rows, losses, chance_loss)
    _draw_accuracy(ax_acc, rows)
    return save_figure(plt, fig, path)


def _check_metrics(metrics):
    """Per-epoch rows sorted by epoch; each must be a dict with a numeric 'epoch'."""
    rows = list(metrics or [])
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("epoch"), (int, float)):
            raise CsNetsError(f"metrics row {i} has no numeric 'epoch': {row!r}")
    return sorted(rows, key=lambda row: row["epoch"])


def _series(rows, key):
    """(epochs, values) of the rows where ``key`` holds a finite number."""
    pairs = [(r["epoch"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    pairs = [(e, v) for e, v in pairs if np.isfinite(v)]
    return np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float)


def batches_per_epoch(losses, rows):
    """How many of the (N,) batch losses make one epoch of the sorted metrics rows.

    After full epochs it is N / epochs. A run that stopped mid-epoch (diverged,
    interrupted) logged extra batches after its last epoch row; then the count is
    the one whose per-epoch means reproduce the logged train_loss values.
    """
    epochs = rows[-1]["epoch"] - rows[0]["epoch"] + 1
    even = max(losses.size, 1) / epochs
    known = [(i, r["train_loss"]) for i, r in enumerate(rows[:3])
             if isinstance(r.get("train_loss"), (int, float))]
    if not known or losses.size < epochs:
        return even
    cumsum = np.concatenate([[0.0], np.cumsum(losses, dtype=np.float64)])
    sizes = np.arange(int(losses.size // epochs), 0, -1)  # candidates, full epochs first
    fits = np.ones(sizes.size, bool)
    for i, loss in known:
        means = (cumsum[(i + 1) * sizes] - cumsum[i * sizes]) / sizes
        fits &= np.isclose(means, loss, rtol=1e-4)
    return float(sizes[np.argmax(fits)]) if fits.any() else even


def _draw_loss(ax, rows, losses, chance_loss=None):
    if rows:
        # Epoch e ends at x = e, so batches and epoch rows line up.
        x = rows[0]["epoch"] - 1 + np.arange(1, losses.size + 1) / batches_per_epoch(losses, rows)
        ax.set_xlabel("epoch")
    else:
        x = np.arange(1, losses.size + 1, dtype=float)
        ax.set_xlabel("batch")
    if losses.size:
        ax.plot(x, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="batch loss")
        ax.plot(x, ema(losses, smoothing_beta(losses.size)), color="tab:blue",
                linewidth=2, label="smoothed (EMA)")
        _clip_spikes(ax, losses)
        _mark_divergence(ax, x, losses)
    epochs, means = _series(rows, "train_loss")
    if epochs.size:
        # A mean over an epoch's batches belongs in the middle of that epoch; alone,
        # the means are joined by a line to read as a curve.
        ax.plot(epochs - 0.5 if losses.size else epochs, means, "o" if losses.size else "o-",
                color="tab:orange", markeredgecolor="black", markersize=6,
                label="epoch mean train loss", zorder=3)
    centre = 0.5 if losses.size else 0.0
    for key, label, color, style in (("train_data_loss", "epoch mean data loss", "tab:purple", "^-"),
                                     ("train_reg_loss", "epoch mean L2 regularization", "tab:gray", "v-")):
        epochs, values = _series(rows, key)
        if epochs.size:
            ax.plot(epochs - centre, values, style, color=color, markersize=5, linewidth=1.2, label=label, zorder=3)
    if chance_loss is not None and np.isfinite(chance_loss):
        ax.axhline(chance_loss, color="black", linestyle="--", linewidth=1,
                   label=f"ln C = {chance_loss:.3f}: Softmax data loss at chance")
    if rows:
        ax.locator_params(axis="x", integer=True)
    ax.set_ylabel("loss")
    ax.set_title("Training loss", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best")


def _clip_spikes(ax, losses):
    """Keep a few huge early batches from flattening the rest of the curve."""
    finite = losses[np.isfinite(losses)]
    if finite.size < 20:
        return
    low, high = np.percentile(finite, [0, 99])
    if finite.max() > high + 2 * (high - low):
        ax.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))


def _mark_divergence(ax, x, losses):
    """A red line where the loss first became NaN or inf: the run diverged there."""
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        ax.axvline(x[bad[0]], color="tab:red", linestyle="--", linewidth=1,
                   label="loss not finite from here")


def _draw_accuracy(ax, rows):
    styles = [("train_accuracy", "train", "tab:blue", "o-"),
              ("val_accuracy", "validation", "tab:green", "s-")]
    drawn = False
    for key, label, color, style in styles:
        epochs, acc = _series(rows, key)
        if not epochs.size:
            continue
        if key == "val_accuracy":
            best = int(np.argmax(acc))
            label = f"validation (best {acc[best]:.3f} at epoch {epochs[best]:g})"
        ax.plot(epochs, acc, style, color=color, markersize=5, label=label)
        drawn = True
    if drawn:
        ax.legend(fontsize=9, loc="best")
    else:
        ax.text(0.5, 0.5, "no accuracy logged", ha="center", va="center",
                transform=ax.transAxes, color="gray")
    ax.locator_params(axis="x", integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per epoch", fontsize=11)
    ax.grid(alpha=0.3)
