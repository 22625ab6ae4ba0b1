"""A circuit drawn as the lecture's slides draw it: inputs on the left, the output on the right,
every wire with its forward value above (green) and its gradient below (red)."""

import numpy as np

from cs_nets.circuits.table import fmt, gate_label
from cs_nets.nn import graph as G
from cs_nets.plots.backend import new_figure, require_matplotlib, save_figure

VALUE_COLOR, GRAD_COLOR = "#1a7f37", "#cf222e"
COLUMN_PX, ROW_PX, MARGIN_PX = 210, 120, 60  # room per graph column and per input row
FONT_SIZE = 12


def layout(circuit):
    """{id(node): (column, row)}: column = longest path from an input (inputs 0), row from a tidy tree walk.

    Inputs get rows 0, 1, 2, ... in the order the output reaches them; a gate sits at the mean row of its inputs.
    """
    nodes = circuit.nodes
    column, row = {}, {}
    for node in nodes:  # forward order: every input's column is known first
        ins = [i for i in node.inputs if not isinstance(i, G.Const)]
        column[id(node)] = 1 + max((column[id(i)] for i in ins), default=-1)
    next_row = 0
    for node in nodes:
        ins = [i for i in node.inputs if not isinstance(i, G.Const)]
        if ins:
            row[id(node)] = float(np.mean([row[id(i)] for i in ins]))
        else:
            row[id(node)] = float(next_row)
            next_row += 1
    return {id(n): (column[id(n)], row[id(n)]) for n in nodes}


def plot_circuit(circuit, path, title=None):
    """Draw ``circuit`` (cs_nets.circuits.Circuit, after forward and backward) and write a PNG at ``path``.

    Size: (columns + 1) * 210 + 120 px wide, about (inputs) * 120 + 120 px high (more when a value
    is a matrix, written one row per line). Returns the path written.
    """
    plt = require_matplotlib()
    # matrices are written one row per line: spread the rows so stacked labels do not meet
    lines = max(_multiline(v).count("\n") + 1 for n in circuit.nodes for v in (n.value, n.grad))
    spread = 1.0 + 0.7 * (lines - 1)
    pos = {k: (c, r * spread) for k, (c, r) in layout(circuit).items()}
    columns = 1 + max(c for c, _ in pos.values())
    rows = 1 + max(r for _, r in pos.values())
    chars = max(len(line) for n in circuit.nodes for v in (n.value, n.grad) for line in _multiline(v).split("\n"))
    width = (columns + 1) * max(COLUMN_PX, 12 * chars + 60) + 2 * MARGIN_PX  # a label fits its wire
    height = int(rows * ROW_PX + 2 * MARGIN_PX)
    fig = new_figure(plt, width, height)
    ax = fig.add_subplot()
    ax.set_xlim(-0.6, columns + 0.4)
    ax.set_ylim(rows - 0.5, -0.5 - (0.45 if title else 0.1))
    ax.axis("off")

    def xy(node):
        c, r = pos[id(node)]
        return float(c), r

    out = circuit.graph.output
    for node in circuit.nodes:
        for k, inp in enumerate(node.inputs):
            if id(inp) in pos:
                _wire(ax, xy(inp), xy(node), inp.value, circuit.wire_grads[(id(node), k)], start_gap=_gap(inp))
    x_out, y_out = xy(out)
    _wire(ax, (x_out, y_out), (x_out + 0.95, y_out), out.value, out.grad, start_gap=_gap(out), end_gap=0.0)
    for node in circuit.nodes:
        x, y = xy(node)
        if isinstance(node, G.Input):
            ax.text(x - 0.12, y, node.name, ha="right", va="center", fontsize=FONT_SIZE + 2, fontweight="bold")
        else:
            ax.text(x, y, gate_label(node), ha="center", va="center", fontsize=FONT_SIZE + 1,
                    bbox={"boxstyle": "circle,pad=0.45" if len(gate_label(node)) <= 3 else "round,pad=0.4",
                          "facecolor": "white", "edgecolor": "black"})
    if title:
        ax.text(-0.5, -0.5 - 0.3, title, ha="left", va="center", fontsize=FONT_SIZE + 1)
    ax.text(columns + 0.35, rows - 0.55, "value", color=VALUE_COLOR, ha="right", va="bottom", fontsize=FONT_SIZE)
    ax.text(columns + 0.35, rows - 0.5, "gradient", color=GRAD_COLOR, ha="right", va="top", fontsize=FONT_SIZE)
    return save_figure(plt, fig, path)


def _gap(node):
    """How far a wire starts right of its node: inputs are bare names, gates are drawn circles."""
    return -0.1 if isinstance(node, G.Input) else 0.2


def _wire(ax, start, end, value, grad, start_gap=0.2, end_gap=0.2):
    """A wire from start to end (data coordinates): level out of its node, then straight to the next.

    The value is written above the level part and the gradient below it, as on the slides.
    """
    (x0, y0), (x1, y1) = start, end
    x0, x1 = x0 + start_gap, x1 - end_gap
    xm = x0 + (0.6 if y0 != y1 else 0.85) * (x1 - x0)
    ax.plot([x0, xm], [y0, y0], color="0.35", lw=1.3, solid_capstyle="butt")
    ax.annotate("", xy=(x1, y1), xytext=(xm, y0),
                arrowprops={"arrowstyle": "-|>", "color": "0.35", "lw": 1.3, "shrinkA": 0, "shrinkB": 0})
    lx = (x0 + xm) / 2
    ax.text(lx, y0 - 0.05, _multiline(value), color=VALUE_COLOR, ha="center", va="bottom",
            fontsize=FONT_SIZE, fontweight="bold")
    ax.text(lx, y0 + 0.05, _multiline(grad), color=GRAD_COLOR, ha="center", va="top", fontsize=FONT_SIZE)


def _multiline(value):
    """A matrix one row per line, so wires stay short; a number or a vector on one line."""
    array = np.asarray(value)
    if array.ndim == 2 and array.size <= 16:
        return "\n".join(fmt(row) for row in array)
    return fmt(array)
