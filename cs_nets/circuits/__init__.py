"""``csnets backprop``: expressions parsed safely into cs_nets.nn.graph circuits, shown as tables and pictures.

Not lecture code (that is cs_nets.nn.graph): this package turns what a user types into a
graph, and a graph into text (table.py) or Graphviz DOT; cs_nets.plots.circuit draws it.
"""

from cs_nets.circuits.examples import EXAMPLES, get_example
from cs_nets.circuits.expr import Circuit, evaluate
from cs_nets.circuits.table import format_table, to_dot

__all__ = ["EXAMPLES", "Circuit", "evaluate", "format_table", "get_example", "to_dot"]
