"""A sweep at a glance: validation accuracy against each swept parameter, one panel each.

Trials that ran to the end are filled dots, trials the scheduler stopped are open
triangles labeled with the epoch they were stopped after, diverged trials gray
crosses; the best trial is ringed in red. Failed and unstarted trials have no
accuracy to show and are only counted in the title.
"""

from __future__ import annotations

import json
import math

from cs_nets.errors import CsNetsError
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure

PANEL_PX = (420, 340)  # width, height of one panel
COLUMNS = 3
STYLE = {  # status -> (label, marker, face colour, edge colour)
    "completed": ("ran to the end", "o", "tab:blue", "tab:blue"),
    "early_stopped": ("ran to the end", "o", "tab:blue", "tab:blue"),
    "stopped": ("stopped by the scheduler (epoch)", "^", "none", "tab:orange"),
    "diverged": ("diverged", "x", "gray", "gray"),
}


def parameter_points(outcomes) -> dict[str, list[tuple]]:
    """{swept key: [(value, val_accuracy, status, stopped_at_epoch, is_best), ...]} of the plottable trials.

    Values that are lists (e.g. model.hidden_dims) become their JSON text.
    """
    scored = [o for o in outcomes if o.status in STYLE and _finite(o.val_accuracy)]
    best = max(scored, key=lambda o: (o.val_accuracy, -o.trial.index), default=None)
    best = best if best is not None and best.status != "diverged" else None
    keys = list(outcomes[0].trial.params) if outcomes else []
    return {key: [(_plain(o.trial.params[key]), o.val_accuracy, o.status, o.stopped_at_epoch, o is best)
                  for o in scored] for key in keys}


def plot_sweep_parameters(outcomes, path):
    """Write the PNG (PANEL_PX per panel, up to COLUMNS panels a row) and return its path.

    outcomes: cs_nets.sweep.results.TrialOutcome list. CsNetsError if no trial has a score.
    """
    points = parameter_points(outcomes)
    if not any(points.values()):
        raise CsNetsError("nothing to plot: no trial has a validation accuracy")
    plt = require_matplotlib()
    rows = math.ceil(len(points) / COLUMNS)
    columns = min(len(points), COLUMNS)
    fig = new_figure(plt, PANEL_PX[0] * columns, PANEL_PX[1] * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (key, pts) in zip(axes, points.items()):
        _panel(ax, key, pts)
    for ax in axes[len(points):]:
        ax.set_visible(False)
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    fig.suptitle(f"validation accuracy over each swept parameter  ·  {len(outcomes)} trials: "
                 + ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items())), fontsize=10)
    handles = {}
    for ax in axes[:len(points)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[0].legend(list(handles.values()), list(handles), fontsize=8, loc="best")
    return save_figure(plt, fig, path)


def _panel(ax, key: str, pts: list[tuple]) -> None:
    values = sorted({p[0] for p in pts}, key=_sort_key)
    numeric = all(_number(v) for v in values)
    position = {v: float(v) for v in values} if numeric else {v: float(i) for i, v in enumerate(values)}
    if numeric and values and min(values) > 0 and max(values) >= 10 * min(values):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(list(position.values()), [str(v) for v in values], rotation=30 if len(values) > 4 else 0)
    for status, (label, marker, face, edge) in STYLE.items():
        mine = [p for p in pts if p[2] == status]
        if not mine:
            continue
        xs = [position[p[0]] for p in mine]
        ys = [p[1] for p in mine]
        ax.scatter(xs, ys, marker=marker, s=45, facecolors=face, edgecolors=edge, linewidths=1.2,
                   label=label, zorder=3)
        if status == "stopped":
            for x, y, p in zip(xs, ys, mine):
                ax.annotate(str(p[3]), (x, y), textcoords="offset points", xytext=(5, -9), fontsize=7,
                            color="tab:orange")
    for p in pts:
        if p[4]:
            ax.scatter([position[p[0]]], [p[1]], s=200, facecolors="none", edgecolors="red", linewidths=1.8,
                       zorder=4, label="best")
    ax.set_xlabel(key)
    ax.set_ylabel("val_accuracy")
    ax.grid(alpha=0.3, which="both")


def _finite(value) -> bool:
    return _number(value) and math.isfinite(value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _sort_key(value):
    return (0, float(value), "") if _number(value) else (1, 0.0, str(value))
