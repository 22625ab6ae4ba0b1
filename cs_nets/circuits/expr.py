"""Expressions typed by a user, parsed safely into a cs_nets.nn.graph circuit and evaluated.

    circuit = evaluate("(x + y) * z", {"x": "-2", "y": "5", "z": "-4"})

The text is parsed with Python's ``ast`` and only a whitelist is turned into nodes:
numbers, input names, ``+ - * / ** @``, unary minus and the calls in FUNCTIONS. It is
never evaluated by Python (no ``eval``): attribute access, subscripts, lambdas,
strings, comparisons and unknown calls are refused. Size is bounded before and after
parsing (MAX_CHARS, MAX_NODES, MAX_DEPTH), the exponent of ``**`` is a number of at most
MAX_EXPONENT, values hold at most MAX_ENTRIES numbers, 2 dimensions and MAX_SIDE numbers
along each (so no chain of products can take long). Every
refusal is a ConfigError (exit 2) of one line naming the column.
"""

import ast
from dataclasses import dataclass, field

import numpy as np

from cs_nets.errors import ConfigError
from cs_nets.nn import graph as G

MAX_CHARS = 1000      # an expression longer than this is refused before parsing
MAX_NODES = 200       # AST nodes: a circuit a person can read, and a bounded amount of work
MAX_DEPTH = 40        # nesting of operations
MAX_EXPONENT = 64     # |p| in x ** p
MAX_VALUE_CHARS = 20_000
MAX_ENTRIES = 1000    # numbers in one input value
MAX_SIDE = 100        # numbers along one axis: a derived value is at most (100, 100), a product 1e6 multiply-adds

FUNCTIONS = {
    "sigmoid": (G.sigmoid, 1),
    "exp": (G.exp, 1),
    "log": (G.log, 1),
    "tanh": (G.tanh, 1),
    "relu": (G.relu, 1),
    "square": (G.square, 1),
    "sum": (G.sum_all, 1),
    "max": (G.maximum, 2),
}
OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@"}
ALLOWED = "numbers, names, + - * / ** @, unary -, and " + ", ".join(f"{f}()" for f in FUNCTIONS)


@dataclass
class Circuit:
    """An evaluated expression: the graph after forward() and backward().

    graph: cs_nets.nn.graph.Graph; text: the expression;
    source: {id(node): the expression text of that node}; column: {id(node): 1-based column};
    wire_grads: {(id(consumer), k): gradient sent into the consumer's k-th input}.
    """

    graph: G.Graph
    text: str
    source: dict = field(default_factory=dict)
    column: dict = field(default_factory=dict)
    wire_grads: dict = field(default_factory=dict)

    @property
    def nodes(self):
        """The non-constant nodes in forward order (inputs first, output last)."""
        return [n for n in self.graph.order if not isinstance(n, G.Const)]


def evaluate(text, values):
    """Parse ``text``, set its inputs from ``values`` ({name: text or number or array}), run forward and backward."""
    output, source, column = parse_expression(text)
    graph = G.Graph(output)
    missing = [name for name in graph.inputs if name not in values]
    if missing:
        raise ConfigError(f"expression: no value for {missing[0]} (give it with --at {missing[0]}=VALUE)")
    unused = sorted(set(values) - set(graph.inputs))
    if unused:
        raise ConfigError(f"--at {unused[0]}: the expression has no input named {unused[0]}")
    arrays = {name: parse_value(name, values[name]) for name in graph.inputs}
    with np.errstate(all="ignore"):  # overflow and log(0) are reported below, once, at their column
        try:
            graph.forward(**arrays)
        except G.NodeError as err:
            raise ConfigError(f"expression, column {column[id(err.node)]}: {err}") from None
        for node in graph.order:
            if not np.all(np.isfinite(node.value)):
                raise ConfigError(f"expression, column {column.get(id(node), 1)}: {source.get(id(node), '')} "
                                  f"is not finite ({_brief(node.value)}): overflow, or a log or division out of range")
        graph.backward()
        wire_grads = {(id(n), k): g for n in graph.order if n.inputs for k, g in enumerate(graph.input_grads(n))}
    for node in graph.order:
        if not np.all(np.isfinite(node.grad)):
            raise ConfigError(f"expression, column {column.get(id(node), 1)}: the gradient of "
                              f"{source.get(id(node), '')} is not finite")
    return Circuit(graph, text, source, column, wire_grads)


def parse_expression(text):
    """Text -> (output node, {id(node): source text}, {id(node): column}); ConfigError if not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("expression: empty; e.g. \"(x + y) * z\"")
    if len(text) > MAX_CHARS:
        raise ConfigError(f"expression: {len(text)} characters, at most {MAX_CHARS} are allowed")
    for index, char in enumerate(text):  # one line of printable text: columns then mean what they say
        if ord(char) < 32 or ord(char) == 127:
            raise ConfigError(f"expression, column {index + 1}: control character U+{ord(char):04X} is not allowed")
    tree = _parse(text, "expression")
    _check_size(tree, "expression", MAX_NODES)
    source, column, inputs = {}, {}, {}

    def build(node):
        col = getattr(node, "col_offset", 0) + 1
        made = _build(node, build, inputs, col)
        if isinstance(made, G.Node) and id(made) not in source:
            source[id(made)] = ast.get_source_segment(text, node) or ""
            column[id(made)] = col
        return made

    output = G.as_node(build(tree.body))
    if isinstance(output, G.Const) or not inputs:
        raise ConfigError("expression: has no input names; e.g. \"(x + y) * z\"")
    return output, source, column


def _build(node, build, inputs, col):
    """One AST node -> a graph node (or a float for a number); ConfigError for anything else."""
    where = f"expression, column {col}"
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise ConfigError(f"{where}: {str(node.value)[:20]!r} is not allowed (allowed: {ALLOWED})")
        if not abs(node.value) < 1e300:  # 10**400 is an int Python can hold, not a float
            raise ConfigError(f"{where}: the number is too large")
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ConfigError(f"{where}: {node.id} is a function; call it as {node.id}(...)")
        if node.id not in inputs:
            inputs[node.id] = G.Input(node.id)
        return inputs[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = build(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        return -operand if isinstance(operand, float) else G.Gate("negate", operand)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        if isinstance(node.op, ast.Pow):
            return G.power(build(node.left), _exponent(node.right, col))
        left, right = build(node.left), build(node.right)
        if isinstance(left, float) and isinstance(right, float):  # 2 * 3: a constant of the circuit
            left = G.Const(np.float64(left))
        gate = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide",
                ast.MatMult: "matmul"}[type(node.op)]
        return G.Gate(gate, left, right)
    if isinstance(node, ast.Call):
        return _call(node, build, where)
    if isinstance(node, ast.Attribute):  # point at the dot
        where = f"expression, column {node.value.end_col_offset + 1}"
    what = type(node).__name__
    hint = {"Attribute": "attribute access", "Lambda": "lambda", "Subscript": "indexing",
            "Compare": "comparison", "BoolOp": "and/or"}.get(what, what)
    raise ConfigError(f"{where}: {hint} is not allowed (allowed: {ALLOWED})")


def _call(node, build, where):
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in FUNCTIONS:
        shown = name if name else ast.unparse(node.func)[:40]
        raise ConfigError(f"{where}: unknown function {shown} (allowed: {', '.join(FUNCTIONS)})")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ConfigError(f"{where}: {name}() takes plain arguments, no keywords or *")
    function, arity = FUNCTIONS[name]
    if len(node.args) != arity:
        raise ConfigError(f"{where}: {name}() takes {arity} argument{'s' if arity > 1 else ''}, "
                          f"got {len(node.args)}")
    args = [build(a) for a in node.args]
    if all(isinstance(a, float) for a in args):
        args[0] = G.Const(np.float64(args[0]))
    return function(*args)


def _exponent(node, col):
    """The exponent of ``**``: a number (optionally negative) with |p| <= MAX_EXPONENT."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if not isinstance(node, ast.Constant) or type(node.value) not in (int, float):
        raise ConfigError(f"expression, column {col}: the exponent of ** must be a number, e.g. x ** 2")
    if not abs(node.value) <= MAX_EXPONENT:  # also refuses nan
        raise ConfigError(f"expression, column {col}: exponent {node.value} is too large (at most {MAX_EXPONENT})")
    return sign * float(node.value)


def parse_assignments(items):
    """["x=-2", "W=[[1,2],[3,4]]", ...] (the --at options) -> {name: value text}; ConfigError if malformed."""
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not value.strip():
            raise ConfigError(f"--at {item[:40]!r}: expected NAME=VALUE, e.g. --at x=-2 or --at \"W=[[1,2],[3,4]]\"")
        if name in values:
            raise ConfigError(f"--at {name}: given twice")
        values[name] = value.strip()
    return values


def parse_value(name, text):
    """``--at`` value -> float64 array: a number or a (nested) list of numbers, 2-D at most."""
    if isinstance(text, (int, float, np.ndarray)):
        return np.asarray(text, dtype=np.float64)
    where = f"--at {name}"
    if len(text) > MAX_VALUE_CHARS:
        raise ConfigError(f"{where}: {len(text)} characters, at most {MAX_VALUE_CHARS} are allowed")
    tree = _parse(text, where)
    _check_size(tree, where, 3 * MAX_ENTRIES + 10)

    def literal(node, depth):
        if depth > 2:
            raise ConfigError(f"{where}: at most 2 dimensions (a number, [list] or [[matrix]])")
        if isinstance(node, (ast.List, ast.Tuple)):
            return [literal(e, depth + 1) for e in node.elts]
        sign = 1.0
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            node = node.operand  # only a number may follow a sign
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return sign * float(node.value)  # float(int) of a huge int: OverflowError, caught below
        raise ConfigError(f"{where}, column {getattr(node, 'col_offset', 0) + 1}: expected a number or a list "
                          f"of numbers, e.g. {name}=-2 or {name}=[[0.1,0.5],[-0.3,0.8]]")

    try:
        array = np.array(literal(tree.body, 0), dtype=np.float64)
    except OverflowError:
        raise ConfigError(f"{where}: a number too large for a float") from None
    except ValueError:
        raise ConfigError(f"{where}: rows of different lengths") from None
    if array.size > MAX_ENTRIES:
        raise ConfigError(f"{where}: {array.size} numbers, at most {MAX_ENTRIES} are allowed")
    if any(side > MAX_SIDE for side in array.shape):
        raise ConfigError(f"{where}: shape {array.shape}, at most {MAX_SIDE} numbers along each axis are allowed")
    if array.size == 0:
        raise ConfigError(f"{where}: empty")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{where}: numbers must be finite")
    return array


def _parse(text, where):
    """ast.parse in eval mode; syntax errors (and parser limits) as one-line ConfigErrors."""
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as err:
        if err.lineno == 1 and err.offset is not None:  # offset 0: the text ended too early
            column = f", column {err.offset or len(text) + 1}"
        else:
            column = ""
        raise ConfigError(f"{where}{column}: {err.msg}") from None
    except (ValueError, RecursionError, MemoryError) as err:  # null bytes, parser stack limits
        raise ConfigError(f"{where}: cannot be parsed ({type(err).__name__})") from None


def _check_size(tree, where, max_nodes):
    """Refuse more than max_nodes AST nodes or nesting deeper than MAX_DEPTH (+2 for values), without recursion."""
    count, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise ConfigError(f"{where}: more than {max_nodes} parts; a circuit this big cannot be read")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}, column {getattr(node, 'col_offset', 0) + 1}: "
                              f"nested more than {MAX_DEPTH} deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _brief(value):
    return np.array2string(np.asarray(value), precision=3, threshold=6)
