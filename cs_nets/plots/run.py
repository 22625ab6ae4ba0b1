"""All the pictures of one run directory, drawn from the files the run wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cs_nets.plots.backend import require_matplotlib
from cs_nets.plots.confusion import plot_confusion
from cs_nets.plots.curves import plot_curves
from cs_nets.plots.regions import plot_regions, run_panel
from cs_nets.plots.templates import plot_templates


def plot_run(run_dir, out_dir=None) -> list[Path]:
    """Write the pictures of a run directory: curves, confusion matrix, and templates (pixel
    models) or decision regions (2-D points)."""
    from cs_nets.checkpoint import load_checkpoint
    from cs_nets.runs import read_batch_losses, read_metrics, read_summary

    require_matplotlib()
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    summary = read_summary(run_dir)
    model, inputs, meta = load_checkpoint(run_dir)
    names = summary["class_names"]
    written = []
    metrics = [m for m in read_metrics(run_dir) if m.get("val_accuracy") is not None]
    if metrics:
        written.append(plot_curves(metrics, read_batch_losses(run_dir), out_dir / "curves.png",
                                   title=f"{run_dir.name}: training"))
    written.append(plot_confusion(np.array(summary["test_confusion"]), names, out_dir / "confusion.png",
                                  title=f"{run_dir.name}: test split"))
    first_layer = model.params.get("W", model.params.get("W1"))
    if not inputs.features and first_layer is not None and first_layer.shape[0] == 3 * 32 * 32:
        # Templates only where weights map to pixels; feature weights have no picture.
        written.append(plot_templates(first_layer, names if first_layer.shape[1] == len(names) else None,
                                      out_dir / "templates.png", title=f"{run_dir.name}: learned templates"))
    panel = run_panel(run_dir, label=run_dir.name)
    if panel is not None:
        written.append(plot_regions(panel["predict"], panel["X"], panel["y"], out_dir / "regions.png",
                                    panel["num_classes"], title=panel["title"]))
    return written
