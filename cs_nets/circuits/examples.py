"""The lecture's circuits by name (CS231n lecture 4), with the values its slides use.

    csnets backprop --example NAME     is    csnets backprop EXPR --at NAME=VALUE ...
"""

from dataclasses import dataclass

from cs_nets.errors import ConfigError


@dataclass(frozen=True)
class Example:
    """expression: the circuit; values: {input: value text}; what: one line on what it shows."""

    expression: str
    values: dict
    what: str


EXAMPLES = {
    "simple": Example(
        "(x + y) * z",
        {"x": "-2", "y": "5", "z": "-4"},
        "f = (x + y) z: q = x + y = 3, f = -12; df/dx = df/dy = -4 (add distributes), df/dz = 3",
    ),
    "sigmoid_neuron": Example(
        "1 / (1 + exp(-(w0 * x0 + w1 * x1 + w2)))",
        {"w0": "2", "x0": "-1", "w1": "-3", "x1": "-2", "w2": "-3"},
        "a 2-D neuron σ(w0 x0 + w1 x1 + w2), gate by gate: f = 0.73, dw = (-0.20, -0.39, 0.20), dx = (0.39, -0.59)",
    ),
    "patterns": Example(
        "2 * (x * y + max(z, w))",
        {"x": "3", "y": "-4", "z": "2", "w": "-1"},
        "patterns in gradient flow: add distributes, multiply swaps, max routes (w gets 0)",
    ),
    "vectorized": Example(
        "sum((W @ x) ** 2)",
        {"W": "[[0.1, 0.5], [-0.3, 0.8]]", "x": "[0.2, 0.4]"},
        "f = ||W x||²: q = W x = (0.22, 0.26), f = 0.116, dq = 2q, dW = 2q xᵀ, dx = 2Wᵀq",
    ),
}


def get_example(name):
    """The Example called ``name``; ConfigError (exit 2) naming the choices otherwise."""
    if name not in EXAMPLES:
        raise ConfigError(f"--example: expected one of {', '.join(EXAMPLES)}, got {name!r}")
    return EXAMPLES[name]
