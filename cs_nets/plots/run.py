"""All the pictures of one run directory, drawn from the files the run wrote, finished or not."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cs_nets.errors import DataError
from cs_nets.plots.backend import require_matplotlib
from cs_nets.plots.confusion import plot_confusion
from cs_nets.plots.curves import plot_curves
from cs_nets.plots.regions import plot_regions, run_panel
from cs_nets.plots.templates import plot_templates


def plot_run(run_dir, out_dir=None, log=None) -> list[Path]:
    """Write the pictures of a run directory and return their paths.

    curves.png from metrics.jsonl (and batch_losses.npy), confusion.png from
    summary.json's test confusion matrix, templates.png from model.npz (pixel models
    only), regions.png for runs on 2-D points (decision regions and training points).
    Each picture is drawn when its files are there and readable, so a run that is
    still training, or was killed, gets its curves so far; a file that cannot be
    read (a corrupt summary.json, a bad metrics line) is left out with a note through
    ``log`` (callable(str), optional). DataError only when there is nothing to draw.
    """
    from cs_nets.runs.checkpoint import load_checkpoint
    from cs_nets.runs.reader import read_batch_losses, read_metrics, read_summary

    require_matplotlib()
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    notes: list[str] = []
    summary, checkpoint, losses = None, None, None
    if (run_dir / "summary.json").exists():
        summary = _try(read_summary, run_dir, notes)
    else:
        notes.append(f"{run_dir} has no summary.json (a run still starting, or killed): drawing what there is")
    if (run_dir / "model.npz").exists():
        checkpoint = _try(load_checkpoint, run_dir, notes)
    losses = _try(read_batch_losses, run_dir, notes)
    metrics = [m for m in read_metrics(run_dir, notes) if m.get("val_accuracy") is not None]

    names = _class_names(summary, checkpoint)
    written = []
    if metrics:
        written.append(plot_curves(metrics, losses, out_dir / "curves.png", title=f"{run_dir.name}: training",
                                   chance_loss=_chance_loss(checkpoint)))
    confusion = _confusion(summary, names)
    if confusion is not None:
        written.append(plot_confusion(confusion, names, out_dir / "confusion.png", title=f"{run_dir.name}: test split"))
    if checkpoint is not None:
        model, inputs, _ = checkpoint
        first_layer = model.params.get("W", model.params.get("W1"))
        side = inputs.image_size or 32  # the checkpoint's image side (32 when an older one records none)
        if not inputs.features and first_layer is not None and first_layer.shape[0] == 3 * side * side:
            # Templates only where weights map to pixels; feature weights have no picture.
            labels = names if names is not None and first_layer.shape[1] == len(names) else None
            written.append(plot_templates(first_layer, labels, out_dir / "templates.png",
                                          title=f"{run_dir.name}: learned templates"))
        panel = run_panel(run_dir, label=run_dir.name)
        if panel is not None:
            written.append(plot_regions(panel["predict"], panel["X"], panel["y"], out_dir / "regions.png",
                                        panel["num_classes"], title=panel["title"]))
    if not written:  # one line: the first note says why
        raise DataError(f"nothing to draw in {run_dir}: no readable epoch metrics, test confusion matrix or model"
                        + (f" ({notes[0]})" if notes else ""))
    for note in notes:
        if log is not None:
            log(note)
    return written


def _chance_loss(checkpoint) -> float | None:
    """ln C, the Softmax data loss of uniform scores, for a Softmax model's curves; None otherwise."""
    if checkpoint is None or getattr(checkpoint[0], "loss_name", None) != "softmax":
        return None
    return math.log(checkpoint[0].num_classes)


def _try(read, run_dir, notes):
    """read(run_dir), or None with the one-line reason appended to notes."""
    try:
        return read(run_dir)
    except DataError as err:
        notes.append(str(err))
        return None


def _class_names(summary, checkpoint) -> list[str] | None:
    for names in ((summary or {}).get("class_names"), checkpoint[2].get("class_names") if checkpoint else None):
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return [n[:40] for n in names]
    return None


def _confusion(summary, names) -> np.ndarray | None:
    """summary.json's test confusion matrix when it is a square table of counts, one row per class."""
    rows = (summary or {}).get("test_confusion")
    if names is None or not isinstance(rows, list) or len(rows) != len(names):
        return None
    if not all(isinstance(r, list) and len(r) == len(names) and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**53 for c in r) for r in rows):
        return None
    return np.array(rows, dtype=np.int64)


def run_pictures(wanted: bool):
    """plot_run if pictures are wanted (checking first that matplotlib is there), else None:
    what ``cs_nets.runs.task.run(..., pictures=)`` takes for ``--plot`` or ``output.plot``."""
    if not wanted:
        return None
    require_matplotlib()  # fail before training, not after
    return plot_run
