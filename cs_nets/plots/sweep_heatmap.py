"""A hyperparameter sweep at a glance: the metric over one or two swept parameters."""

import dataclasses
import json
import math

import numpy as np

from cs_nets.errors import CsNetsError
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure

WIDTH_PX, HEIGHT_PX = 800, 600
MIN_FILLED = 0.5  # below this share of tried cells a grid is mostly holes: scatter instead
MAX_ANNOTATED = 12  # values per axis up to which heatmap cells show their number


@dataclasses.dataclass
class SweepTable:
    """The rows of a sweep reduced to what one picture can show.

    - names: the 1 or 2 plotted parameters (x first).
    - values: per plotted parameter, its distinct values sorted (numbers by value).
    - scores: (len(values[0]),) or (len(values[0]), len(values[1])) best metric per
      cell (max over the other parameters); NaN where no run succeeded.
    - tried: bool, shaped like scores; True where some run (ok or failed) had these values.
    - reduced: other varying parameters the max is taken over.
    - points: (coords, metric) of every successful run; failed: coords of failed runs.
    """

    names: list
    values: list
    scores: np.ndarray
    tried: np.ndarray
    reduced: list
    points: list
    failed: list


def sweep_table(rows, metric="val_accuracy"):
    """Reduce sweep rows to a SweepTable (pure NumPy; no matplotlib).

    rows: [{"params": {name: value}, metric: float | None, "status": "ok" | ...}].
    A row fails when its status is not "ok" (a missing status counts as ok) or its
    metric is not a finite number. Plotted: the two parameters with the most distinct
    values (ties by name), or the only one; parameters with one value are not swept.
    """
    rows = list(rows or [])
    params = [_params(i, row) for i, row in enumerate(rows)]
    ok = [_is_ok(row, metric) for row in rows]
    if not any(ok):
        raise CsNetsError(f"nothing to plot: no sweep row has status 'ok' and a {metric!r} value")
    names = sorted({name for p in params for name in p})
    if not names:
        raise CsNetsError("nothing to plot: the sweep rows have no parameters")
    distinct = {n: sorted({_value(p, n) for p in params}, key=_sort_key) for n in names}
    swept = sorted((n for n in names if len(distinct[n]) > 1), key=lambda n: (-len(distinct[n]), n))
    plotted = swept[:2] or names[:1]
    values = [distinct[n] for n in plotted]
    index = [{v: i for i, v in enumerate(vals)} for vals in values]

    shape = tuple(len(v) for v in values)
    scores, tried = np.full(shape, np.nan), np.zeros(shape, bool)
    points, failed = [], []
    for p, row, good in zip(params, rows, ok):
        coords = tuple(_value(p, n) for n in plotted)
        cell = tuple(ix[c] for ix, c in zip(index, coords))
        tried[cell] = True
        if good:
            score = float(row[metric])
            points.append((coords, score))
            scores[cell] = np.fmax(scores[cell], score)  # fmax: NaN (empty) loses
        else:
            failed.append(coords)
    return SweepTable(plotted, values, scores, tried, swept[2:], points, failed)


def plot_sweep(rows, path, metric="val_accuracy"):
    """Plot a sweep's metric over its swept hyperparameters and write a PNG.

    - One swept parameter: a line through the best run per value, every run a dot.
    - Two (or more: the two with the most distinct values, max over the rest, as the
      title says): a heatmap with the values as axis labels and the metric in the
      cells -- or, when the runs do not form a grid (random search), a scatter colored
      by the metric. Failed runs are left out: blank cells / gray crosses.
    Numeric axes spanning 10x or more of positive values are log-scaled.
    Size: 800x600 px. Raises CsNetsError if no run succeeded. Returns the path written.
    """
    table = sweep_table(rows, metric)
    plt = require_matplotlib()
    fig = new_figure(plt, WIDTH_PX, HEIGHT_PX)
    ax = fig.add_subplot()
    if len(table.names) == 1:
        _draw_line(ax, table, metric)
    elif table.tried.mean() >= MIN_FILLED or not all(map(_numeric, table.values)):
        _draw_heatmap(fig, ax, table, metric)
    else:
        _draw_scatter(fig, ax, table, metric)
    ax.set_title(_title(table, metric), fontsize=10)
    return save_figure(plt, fig, path)


def _params(i, row):
    if not isinstance(row, dict) or not isinstance(row.get("params"), dict):
        raise CsNetsError(f"sweep row {i} has no 'params' dict: {row!r}")
    return row["params"]


def _is_ok(row, metric):
    value = row.get(metric)
    return (row.get("status", "ok") == "ok" and isinstance(value, (int, float))
            and not isinstance(value, bool) and math.isfinite(value))


def _value(params, name):
    """A hashable value for one parameter; lists/dicts by their JSON text."""
    value = params.get(name)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric(values):
    return all(_is_number(v) for v in values)


def _sort_key(v):
    return (0, float(v), "") if _is_number(v) else (1, 0.0, str(v))


def _fmt(v):
    return f"{v:.3g}" if _is_number(v) else ("n/a" if v is None else str(v))


def _fmt_score(score, table):
    """Accuracy-like scores (all in 0..1) with 3 decimals, anything else with 3 digits."""
    unit = all(0 <= s <= 1 for _, s in table.points)
    return f"{score:.3f}" if unit else f"{score:.3g}"


def _log_axis(values):
    """Log-scale numeric positive values that span at least a factor of 10."""
    return _numeric(values) and min(values) > 0 and max(values) >= 10 * min(values)


def _best(table):
    coords, score = max(table.points, key=lambda p: p[1])
    where = ", ".join(f"{n.split('.')[-1]}={_fmt(c)}" for n, c in zip(table.names, coords))
    return score, where


def _title(table, metric):
    lines = [f"{metric} over {' × '.join(table.names)}"]
    if table.reduced:
        lines.append(f"max over {', '.join(table.reduced)}")
    score, where = _best(table)
    lines.append(f"best {_fmt_score(score, table)} at {where}  ·  {len(table.points)} runs ok, "
                 f"{len(table.failed)} failed")
    return "\n".join(lines)


def _draw_line(ax, table, metric):
    values = table.values[0]
    if _numeric(values):
        x = np.array(values, float)
        if _log_axis(values):
            ax.set_xscale("log")
    else:
        x = np.arange(len(values), dtype=float)
        ax.set_xticks(x, [_fmt(v) for v in values])
    position = dict(zip(values, x))
    px = [position[coords[0]] for coords, _ in table.points]
    ax.plot(px, [s for _, s in table.points], "o", color="tab:blue", alpha=0.35,
            label="one run")
    ax.plot(x, table.scores, "-o", color="tab:blue", linewidth=2, label="best per value")
    ax.set_xlabel(table.names[0])
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)


def _draw_heatmap(fig, ax, table, metric):
    xs, ys = table.values
    # Rows = y values, columns = x values; NaN cells stay transparent, i.e. blank.
    grid = np.ma.masked_invalid(table.scores.T)
    image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(np.arange(len(xs)), [_fmt(v) for v in xs],
                  rotation=45 if len(xs) > 6 else 0, ha="right" if len(xs) > 6 else "center")
    ax.set_yticks(np.arange(len(ys)), [_fmt(v) for v in ys])
    ax.set_xlabel(table.names[0])
    ax.set_ylabel(table.names[1])
    if max(len(xs), len(ys)) <= MAX_ANNOTATED:
        middle = np.nanmin(table.scores) + 0.5 * np.ptp(table.scores[np.isfinite(table.scores)])
        for (i, j), score in np.ndenumerate(table.scores):
            if np.isfinite(score):
                # Light text on the dark (low) end of viridis, dark text on the bright end.
                ax.text(i, j, _fmt_score(score, table), ha="center",
                        va="center", fontsize=9, color="white" if score < middle else "black")
            elif table.tried[i, j]:
                ax.text(i, j, "failed", ha="center", va="center", fontsize=8, color="gray")
    bi, bj = np.unravel_index(np.nanargmax(table.scores), table.scores.shape)
    ax.add_patch(_patches().Rectangle((bi - 0.5, bj - 0.5), 1, 1, fill=False,
                                      edgecolor="red", linewidth=2))


def _draw_scatter(fig, ax, table, metric):
    for axis, values in (("x", table.values[0]), ("y", table.values[1])):
        if _log_axis(values):
            getattr(ax, f"set_{axis}scale")("log")
    # Best last, so where runs overlap the higher score shows (max over the rest).
    points = sorted(table.points, key=lambda p: p[1])
    xy = np.array([coords for coords, _ in points], float)
    dots = ax.scatter(xy[:, 0], xy[:, 1], c=[s for _, s in points], cmap="viridis", s=60,
                      edgecolors="black", linewidths=0.5, zorder=3)
    fig.colorbar(dots, ax=ax, label=metric)
    if table.failed:
        fxy = np.array(table.failed, float)
        ax.scatter(fxy[:, 0], fxy[:, 1], marker="x", color="gray", s=40, label="failed",
                   zorder=2)
        ax.legend(fontsize=9, loc="best")
    ax.scatter(xy[-1:, 0], xy[-1:, 1], s=250, facecolors="none", edgecolors="red",
               linewidths=2, zorder=4)
    ax.set_xlabel(table.names[0])
    ax.set_ylabel(table.names[1])
    ax.grid(alpha=0.3, which="both")


def _patches():
    import matplotlib.patches  # lazily, like pyplot: matplotlib is optional

    return matplotlib.patches
