"""A circuit as text: one row per node in forward order, the input gradients, Graphviz DOT.

    node         gate      value   gradient  pattern
    x            input     -2      -4
    x + y        add       3       -4        add distributes
    ...
    df/dx = -4

Numbers are shown with 4 significant digits; arrays as nested lists.
"""

import html

import numpy as np

from cs_nets.nn import graph as G

SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "matmul": "@", "power": "**"}
NAMES = {"negate": "-", "sigmoid": "σ", "square": "²", "sum": "Σ"}
MAX_SHOWN = 12        # entries of an array written out in full
MAX_NODE_CHARS = 44   # longer sub-expressions are cut with …


def fmt(value):
    """A number as 4 significant digits (-0.1966, 0.116, -12); an array as nested lists of them."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        text = f"{float(array):.4g}"
        return "0" if text == "-0" else text
    if array.size > MAX_SHOWN:
        return f"{array.shape} array in [{fmt(array.min())}, {fmt(array.max())}]"
    return "[" + ", ".join(fmt(row) for row in array) + "]"


def gate_label(node):
    """What the slides write in a gate's circle: "+", "* 2", "1 / ·", "exp", "max"; an input's name."""
    if isinstance(node, G.Input):
        return node.name
    if isinstance(node, G.Const):
        return fmt(node.value)
    if node.gate == "power":
        return f"** {fmt(node.params['p'])}"
    if node.gate in SYMBOLS:
        left, right = node.inputs
        symbol = SYMBOLS[node.gate]
        if node.gate in ("add", "multiply"):  # commutative: the slides write "+1", "*2" whichever side
            left, right = (right, left) if isinstance(left, G.Const) else (left, right)
        if isinstance(right, G.Const) and np.ndim(right.value) == 0:
            return f"{symbol} {fmt(right.value)}"
        if isinstance(left, G.Const) and np.ndim(left.value) == 0:
            return f"{fmt(left.value)} {symbol} ·"
        return symbol
    return NAMES.get(node.gate, node.gate)


def patterns(circuit, node):
    """The lecture's words for how ``node`` passes gradients: its gate's, and "copy adds" if used twice."""
    words = [node.pattern] if node.pattern else []
    if circuit.graph.uses(node) > 1:
        words.append(G.COPY_PATTERN)
    return "; ".join(words)


def node_text(circuit, node):
    """A node's name in the table: an input's name, else its sub-expression (cut to MAX_NODE_CHARS)."""
    if isinstance(node, G.Input):
        return node.name
    text = " ".join(circuit.source.get(id(node), node.gate).split())
    return text if len(text) <= MAX_NODE_CHARS else text[:MAX_NODE_CHARS - 1] + "…"


def rows(circuit):
    """[{"node", "gate", "value", "gradient", "pattern"}] in forward order, values as display text."""
    return [
        {
            "node": node_text(circuit, node),
            "gate": "input" if isinstance(node, G.Input) else f"{node.gate} ({gate_label(node)})"
            if gate_label(node) != node.gate else node.gate,
            "value": fmt(node.value),
            "gradient": fmt(node.grad),
            "pattern": patterns(circuit, node),
        }
        for node in circuit.nodes
    ]


def format_table(circuit):
    """The whole report: f = expression, the node table, then df/d(input) for every input."""
    table = rows(circuit)
    header = {"node": "node", "gate": "gate", "value": "value", "gradient": "gradient", "pattern": "pattern"}
    keys = list(header)
    widths = {k: max(len(r[k]) for r in [header, *table]) for k in keys}
    lines = [f"f = {' '.join(circuit.text.split())}", ""]
    for row in [header, *table]:
        lines.append("  ".join(row[k].ljust(widths[k]) for k in keys).rstrip())
    lines.append("")
    lines += [f"df/d{name} = {fmt(node.grad)}" for name, node in circuit.graph.inputs.items()]
    return "\n".join(lines)


def to_dot(circuit):
    """Graphviz DOT, left to right as the slides: each wire labelled value (green) over gradient (red)."""
    ids = {id(n): f"n{i}" for i, n in enumerate(circuit.nodes)}
    lines = ["digraph circuit {", "  rankdir=LR;", '  node [shape=circle, fontname="Helvetica"];']
    for node in circuit.nodes:
        shape = ", shape=plaintext" if isinstance(node, G.Input) else ""
        lines.append(f'  {ids[id(node)]} [label="{_dot_escape(gate_label(node))}"{shape}];')
    for node in circuit.nodes:
        for k, inp in enumerate(node.inputs):
            if id(inp) in ids:
                lines.append(f"  {ids[id(inp)]} -> {ids[id(node)]} "
                             f"[label={_wire_label(inp.value, circuit.wire_grads[(id(node), k)])}];")
    out = circuit.graph.output
    lines.append('  out [shape=point, style=invis];')
    lines.append(f"  {ids[id(out)]} -> out [label={_wire_label(out.value, out.grad)}];")
    lines.append("}")
    return "\n".join(lines)


def _wire_label(value, grad):
    return (f'<<font color="#1a7f37">{html.escape(fmt(value))}</font><br/>'
            f'<font color="#cf222e">{html.escape(fmt(grad))}</font>>')


def _dot_escape(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')
