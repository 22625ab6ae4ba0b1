"""A computational graph that runs backprop, as the lecture draws it (CS231n lecture 4).

Every node implements the slide's API:

    forward(*input values) -> value     and stashes what its backward will need
    backward(dout) -> one gradient per input: dout (upstream) times the local gradient

and a ``Graph`` runs them: forward over the nodes in topological order (every node
after its inputs), then backward in reverse, *adding* the gradients that reach a node
from each of its uses (a value used twice is a copy gate, and a copy gate adds).

Build expressions with Python operators and the functions below; inputs are named:

    x, y, z = Input("x"), Input("y"), Input("z")
    f = Graph((x + y) * z)
    f.forward(x=-2.0, y=5.0, z=-4.0)    # -> -12.0
    f.backward()                         # -> {"x": -4.0, "y": -4.0, "z": 3.0}

Values may be Python numbers or NumPy arrays (NumPy broadcasting applies: an input
broadcast across a bigger array was copied, so its gradient is summed back to its
shape). The gates come from cs_nets.nn.gates; the library's layers and losses
(affine, activations, SVM, Softmax) are nodes too, so a whole net is one graph.
"""

import numpy as np

from cs_nets.errors import ArgumentError
from cs_nets.nn import gates
from cs_nets.nn.activations import ACTIVATION_NAMES, MAXOUT_PIECES
from cs_nets.nn.layers import activation_backward, activation_forward, affine_backward, affine_forward
from cs_nets.nn.losses import LOSSES

# gate name -> (forward, backward, the lecture's word for how it passes the gradient back)
GATES = {
    "add": (gates.add_forward, gates.add_backward, "add distributes"),
    "multiply": (gates.multiply_forward, gates.multiply_backward, "multiply swaps"),
    "max": (gates.max_forward, gates.max_backward, "max routes"),
    "sigmoid": (gates.sigmoid_forward, gates.sigmoid_backward, ""),
    "subtract": (gates.subtract_forward, gates.subtract_backward, ""),
    "divide": (gates.divide_forward, gates.divide_backward, ""),
    "power": (gates.power_forward, gates.power_backward, ""),
    "square": (gates.square_forward, gates.square_backward, ""),
    "exp": (gates.exp_forward, gates.exp_backward, ""),
    "log": (gates.log_forward, gates.log_backward, ""),
    "negate": (gates.negate_forward, gates.negate_backward, ""),
    "tanh": (gates.tanh_forward, gates.tanh_backward, ""),
    "relu": (gates.relu_forward, gates.relu_backward, "max routes"),
    "matmul": (gates.matmul_forward, gates.matmul_backward, "multiply swaps"),
    "sum": (gates.sum_forward, gates.sum_backward, "add distributes"),
}
COPY_PATTERN = "copy adds"  # the pattern of a value that feeds more than one node


class NodeError(ArgumentError):
    """A node whose forward failed (shapes that do not combine); ``node`` is that node."""

    def __init__(self, message, node):
        super().__init__(message)
        self.node = node


class Node:
    """A value in the graph: an input, a constant or the output of a gate.

    inputs: the nodes this one is computed from; value / grad: set by Graph.forward /
    Graph.backward (grad is d output / d this node, shaped like value).
    Operators build new nodes: a + b, a - b, a * b, a / b, a ** 2, -a, a @ b.
    """

    gate = ""       # what the node computes, e.g. "multiply"; "input" / "const" for leaves
    pattern = ""    # the lecture's word for its gradient flow, e.g. "multiply swaps"
    __array_ufunc__ = None  # array * node: NumPy steps aside, so node.__rmul__ builds a gate

    def __init__(self, *inputs):
        self.inputs = tuple(as_node(i) for i in inputs)
        self.value = None
        self.grad = None

    def forward(self, *values):
        """The node's value from its inputs' values; stash what backward needs."""
        raise NotImplementedError

    def backward(self, dout):
        """A tuple with one gradient per input: dout times the local gradient."""
        raise NotImplementedError

    def __add__(self, other):
        return Gate("add", self, other)

    def __radd__(self, other):
        return Gate("add", other, self)

    def __sub__(self, other):
        return Gate("subtract", self, other)

    def __rsub__(self, other):
        return Gate("subtract", other, self)

    def __mul__(self, other):
        return Gate("multiply", self, other)

    def __rmul__(self, other):
        return Gate("multiply", other, self)

    def __truediv__(self, other):
        return Gate("divide", self, other)

    def __rtruediv__(self, other):
        return Gate("divide", other, self)

    def __pow__(self, p):
        return power(self, p)

    def __neg__(self):
        return Gate("negate", self)

    def __matmul__(self, other):
        return Gate("matmul", self, other)

    def __rmatmul__(self, other):
        return Gate("matmul", other, self)

    def __repr__(self):
        return f"{type(self).__name__}({self.gate}, value={self.value!r})"


class Input(Node):
    """A named input: its value is given to Graph.forward, its gradient is returned by Graph.backward."""

    gate = "input"

    def __init__(self, name):
        super().__init__()
        self.name = name


class Const(Node):
    """A constant (a number written in the expression); it gets a gradient, nobody asks for it."""

    gate = "const"

    def __init__(self, value):
        super().__init__()
        self.value = value


class Gate(Node):
    """A node computed by one of the gates in GATES; params are constants of the gate (power's p)."""

    def __init__(self, gate, *inputs, **params):
        super().__init__(*inputs)
        self.gate = gate
        self._forward, self._backward, self.pattern = GATES[gate]
        self.params = params
        self.cache = None

    def forward(self, *values):
        out, self.cache = self._forward(*values, **self.params)
        return out

    def backward(self, dout):
        grads = self._backward(dout, self.cache)
        return grads if len(self.inputs) > 1 else (grads,)


class Affine(Node):
    """out = x @ w + b, the library's affine layer (cs_nets.nn.layers). x: (N, D), w: (D, M), b: (M,)."""

    gate = "affine"

    def forward(self, x, w, b):
        out, self.cache = affine_forward(x, w, b)
        return out

    def backward(self, dout):
        return affine_backward(dout, self.cache)  # (dx, dw, db)


class Activation(Node):
    """An activation of the library (cs_nets.nn.activations) by name, e.g. "relu"; "maxout" takes pieces."""

    def __init__(self, x, name, pieces=MAXOUT_PIECES):
        super().__init__(x)
        if name not in ACTIVATION_NAMES:
            raise ArgumentError(f"activation: expected one of {', '.join(ACTIVATION_NAMES)}, got {name!r}")
        self.gate = name
        self.pieces = pieces

    def forward(self, x):
        out, self.cache = activation_forward(np.asarray(x), self.gate, pieces=self.pieces)
        return out

    def backward(self, dout):
        return (activation_backward(dout, self.cache),)


class Loss(Node):
    """A classification loss of the library (cs_nets.nn.losses: "svm" or "softmax") of scores (N, C).

    The labels y: (N,) are a constant of the node, not an input: nothing differentiates them.
    """

    def __init__(self, scores, y, name):
        super().__init__(scores)
        self.gate = f"{name}_loss"
        self.loss = LOSSES[name]
        self.y = np.asarray(y)

    def forward(self, scores):
        loss, self.dscores = self.loss(scores, self.y)
        return loss

    def backward(self, dout):
        return (self.dscores * dout,)


class Graph:
    """The nodes that compute ``output``, in topological order; forward() then backward().

    order: every node after its inputs, ``output`` last (inputs and constants included).
    inputs: {name: Input node}.
    """

    def __init__(self, output):
        self.output = as_node(output)
        self.order = topological_order(self.output)
        self.inputs = {}
        for node in self.order:
            if isinstance(node, Input):
                if node.name in self.inputs and self.inputs[node.name] is not node:
                    raise ArgumentError(f"{node.name}: two different inputs have this name")
                self.inputs[node.name] = node
        self._uses = {}
        for node in self.order:
            for i in node.inputs:
                self._uses[id(i)] = self._uses.get(id(i), 0) + 1

    def forward(self, **values):
        """Set the inputs to ``values`` (name=number or array) and compute every node; return the output's value."""
        missing = sorted(set(self.inputs) - set(values))
        unknown = sorted(set(values) - set(self.inputs))
        if missing or unknown:
            raise ArgumentError(f"inputs: expected values for {sorted(self.inputs)}, got {sorted(values)}")
        for name, value in values.items():
            self.inputs[name].value = as_float_array(value)
        for node in self.order:
            if node.inputs:
                try:
                    node.value = node.forward(*(i.value for i in node.inputs))
                except ValueError:  # NumPy's shape mismatches, as the one-line error of this library
                    shapes = ", ".join(str(np.shape(i.value)) for i in node.inputs)
                    raise NodeError(f"{node.gate}: cannot combine shapes {shapes}", node) from None
        return self.output.value

    def backward(self, dout=1.0):
        """Gradients of the output with respect to every node, in reverse order; return {input name: gradient}.

        Each node's gradient is the sum over its uses (copy gate: gradient adder);
        a gradient is summed back to its node's shape where NumPy broadcast the node.
        """
        for node in self.order:
            node.grad = np.zeros_like(node.value, dtype=float)[()]
        self.output.grad = np.broadcast_to(dout, np.shape(self.output.value)).astype(float)[()]
        for node in reversed(self.order):
            if node.inputs:
                for inp, grad in zip(node.inputs, self.input_grads(node)):
                    inp.grad = inp.grad + grad
        return {name: node.grad for name, node in self.inputs.items()}

    def input_grads(self, node):
        """The gradient ``node`` sends back along each of its input wires, summed to each input's shape.

        Uses node.grad, so after backward() it tells what each wire carried; an input's grad
        is the sum over all of its wires.
        """
        grads = node.backward(node.grad)
        return [unbroadcast(g, np.shape(i.value)) for i, g in zip(node.inputs, grads)]

    def uses(self, node):
        """How many node inputs read ``node`` (more than one: a copy gate, its gradients add)."""
        return self._uses.get(id(node), 0)


def as_node(value):
    """value itself if it is a Node, else a Const holding it (numbers and arrays)."""
    return value if isinstance(value, Node) else Const(as_float_array(value))


def as_float_array(value):
    """value as a float NumPy array (0-d for a number); float32 stays float32."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def unbroadcast(grad, shape):
    """Sum grad down to ``shape``: the axes NumPy broadcast over were copies, so their gradients add."""
    grad = np.asarray(grad, dtype=float)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad[()]


def topological_order(output):
    """Every node ``output`` depends on, each after all of its inputs (depth-first, no recursion)."""
    order, done, stack = [], set(), [(output, False)]
    while stack:
        node, inputs_done = stack.pop()
        if id(node) in done:
            continue
        if inputs_done:
            done.add(id(node))
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((i, False) for i in reversed(node.inputs) if id(i) not in done)
    return order


# --- the nodes as functions, for what Python has no operator for


def maximum(x, y):
    """max(x, y) elementwise: the max gate routes the gradient to the larger input."""
    return Gate("max", x, y)


def power(x, p):
    """x ** p for a constant number p (not a node: its gradient would need ln x)."""
    if isinstance(p, Node) or np.ndim(p) != 0:
        raise ArgumentError(f"power: the exponent must be a constant number, got {p!r}")
    return Gate("power", x, p=float(p))


def sigmoid(x):
    return Gate("sigmoid", x)


def exp(x):
    return Gate("exp", x)


def log(x):
    return Gate("log", x)


def tanh(x):
    return Gate("tanh", x)


def relu(x):
    return Gate("relu", x)


def square(x):
    return Gate("square", x)


def sum_all(x):
    """Σ of every entry of x: a scalar."""
    return Gate("sum", x)


def matmul(x, y):
    return Gate("matmul", x, y)


def affine(x, w, b):
    return Affine(x, w, b)


def activation(x, name, pieces=MAXOUT_PIECES):
    return Activation(x, name, pieces)


def svm_loss(scores, y):
    return Loss(scores, y, "svm")


def softmax_loss(scores, y):
    return Loss(scores, y, "softmax")
