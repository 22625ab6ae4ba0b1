"""`csnets backprop` and cs_nets.circuits: the lecture's numbers, the safe parser, the pictures."""

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cs_nets import registry
from cs_nets.circuits import EXAMPLES, evaluate, format_table, get_example, to_dot
from cs_nets.circuits.expr import MAX_CHARS, parse_value
from cs_nets.circuits.table import fmt, rows
from cs_nets.cli import main
from cs_nets.errors import ConfigError


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def example(name):
    chosen = get_example(name)
    return evaluate(chosen.expression, chosen.values)


def grads(circuit):
    return {name: node.grad for name, node in circuit.graph.inputs.items()}


def by_source(circuit, text):
    return next(n for n in circuit.nodes if circuit.source.get(id(n)) == text)


# ---- the lecture's numbers


def test_examples_are_the_registry_names():
    assert tuple(EXAMPLES) == registry.BACKPROP_EXAMPLES


def test_simple_circuit():
    c = example("simple")
    assert c.graph.output.value == -12.0
    assert grads(c) == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert by_source(c, "x + y").value == 3.0


def test_sigmoid_neuron():
    c = example("sigmoid_neuron")
    g = grads(c)
    assert c.graph.output.value == pytest.approx(0.73, abs=0.005)
    assert (g["w0"], g["w1"], g["w2"]) == pytest.approx((-0.20, -0.39, 0.20), abs=0.005)
    assert (g["x0"], g["x1"]) == pytest.approx((0.39, -0.59), abs=0.005)
    # the slide's intermediate wires: exp gives 0.37 with gradient -0.53, 1 + exp gives 1.37
    assert by_source(c, "exp(-(w0 * x0 + w1 * x1 + w2))").value == pytest.approx(0.37, abs=0.005)
    assert by_source(c, "exp(-(w0 * x0 + w1 * x1 + w2))").grad == pytest.approx(-0.53, abs=0.005)
    # the same neuron with the sigmoid as one gate
    fused = evaluate("sigmoid(w0 * x0 + w1 * x1 + w2)", get_example("sigmoid_neuron").values)
    for name, value in grads(c).items():
        assert grads(fused)[name] == pytest.approx(value, abs=1e-12)


def test_gate_patterns_circuit():
    c = example("patterns")
    assert c.graph.output.value == -20.0
    assert grads(c) == {"x": -8.0, "y": 6.0, "z": 2.0, "w": 0.0}
    words = {r["node"]: r["pattern"] for r in rows(c)}
    assert words["x * y"] == "multiply swaps"
    assert words["max(z, w)"] == "max routes"
    assert words["x * y + max(z, w)"] == "add distributes"


def test_vectorized_example():
    c = example("vectorized")
    assert c.graph.output.value == pytest.approx(0.116)
    q = by_source(c, "W @ x")
    np.testing.assert_allclose(q.value, [0.22, 0.26])
    np.testing.assert_allclose(q.grad, [0.44, 0.52])
    np.testing.assert_allclose(grads(c)["W"], [[0.088, 0.176], [0.104, 0.208]])
    np.testing.assert_allclose(grads(c)["x"], [-0.112, 0.636])


def test_copy_gate_is_named_in_the_table():
    c = evaluate("x * x + x", {"x": "3"})
    assert grads(c) == {"x": 7.0}
    assert rows(c)[0] == {"node": "x", "gate": "input", "value": "3", "gradient": "7", "pattern": "copy adds"}
    # each of the three wires out of x carries its own gradient: 3, 3 and 1, which add to 7
    wires = sorted(float(g) for (_, _), g in c.wire_grads.items())
    assert wires == [1.0, 1.0, 3.0, 3.0]  # x*x's two inputs, the add's two inputs (x*x and x)


def test_format_table_and_dot():
    text = format_table(example("simple"))
    lines = text.splitlines()
    assert lines[0] == "f = (x + y) * z"
    assert lines[2].split() == ["node", "gate", "value", "gradient", "pattern"]
    assert lines[3].split() == ["x", "input", "-2", "-4"]
    assert lines[5].split() == ["x", "+", "y", "add", "(+)", "3", "-4", "add", "distributes"]
    assert lines[-3:] == ["df/dx = -4", "df/dy = -4", "df/dz = 3"]
    dot = to_dot(example("simple"))
    assert dot.startswith("digraph circuit {") and dot.endswith("}")
    assert 'n2 -> n4 [label=<<font color="#1a7f37">3</font><br/><font color="#cf222e">-4</font>>];' in dot


def test_fmt():
    assert fmt(-0.19661193) == "-0.1966"
    assert fmt(np.array([[0.088, 0.176], [0.104, 0.208]])) == "[[0.088, 0.176], [0.104, 0.208]]"
    assert fmt(-0.0) == "0"
    assert fmt(np.arange(20.0)) == "(20,) array in [0, 19]"


# ---- the command


def test_cli_example_prints_the_lecture_numbers():
    result = run("backprop", "--example", "vectorized")
    assert result.exit_code == 0, result.output
    assert "df/dW = [[0.088, 0.176], [0.104, 0.208]]" in result.output
    assert "df/dx = [-0.112, 0.636]" in result.output


def test_cli_expression_with_values_and_override():
    result = run("backprop", "(x + y) * z", "--at", "x=-2", "--at", "y=5", "--at", "z=-4")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-3:] == ["df/dx = -4", "df/dy = -4", "df/dz = 3"]
    result = run("backprop", "--example", "simple", "--at", "z=2")  # --at overrides an example's value
    assert result.exit_code == 0 and "df/dx = 2" in result.output


def test_cli_dot():
    result = run("backprop", "--example", "patterns", "--dot")
    assert result.exit_code == 0
    assert result.stdout.startswith("digraph circuit {") and "max" in result.stdout


def test_cli_plot_writes_a_png(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    out = tmp_path / "c.png"
    result = run("backprop", "--example", "simple", "--plot", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"wrote {out}")
    image = plt.imread(str(out))
    assert image.shape[2] == 4 and image.shape[1] > image.shape[0]  # wider than high: inputs left, output right
    # both colours are drawn: green values and red gradients
    rgb = (image[..., :3] * 255).round()
    assert np.any(np.all(rgb == [0x1A, 0x7F, 0x37], axis=-1)) and np.any(np.all(rgb == [0xCF, 0x22, 0x2E], axis=-1))


def test_cli_plot_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    result = run("backprop", "--example", "simple", "--plot", tmp_path / "c.png")
    assert result.exit_code == 1
    assert result.output.strip() == "error: plotting needs matplotlib: pip install 'cs_nets[plot]'"
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("args", [[], ["x", "--example", "simple"]])
def test_cli_needs_an_expression_or_an_example(args):
    result = run("backprop", *args)
    assert result.exit_code == 2 and "EXPRESSION or --example" in result.output


# ---- hostile input: one line, exit 2, no traceback

HOSTILE = [
    ("exp(" * 100 + "x" + ")" * 100, [], "nested more than"),             # deep nesting
    ("-" * 900 + "x", [], "nested more than"),
    ("(" * 500 + "x" + ")" * 500, ["x=1"], "at most 1000 are allowed"),   # too long to parse
    ("(" * 300 + "x" + ")" * 300, [], "too many nested parentheses"),
    ("+".join(["x"] * 10_000), [], "at most 1000 are allowed"),            # a 10,000-node expression
    ("+".join(["(x+x)"] * 100), [], "parts"),                             # 500 chars, too many parts
    ("x ** 1e308", [], "too large"),                                        # huge powers
    ("x ** 10 ** 10 ** 10", [], "exponent of ** must be a number"),
    ("x ** y", [], "exponent of ** must be a number"),
    ("x * 10 ** 400", [], "too large"),
    ("x * " + "9" * 400, [], "too large"),
    ("x * 1e400", [], "too large"),
    ("__import__('os').system('echo hi')", [], "unknown function"),
    ("__import__('os')", [], "unknown function __import__"),
    ("x.__class__", [], "column 2: attribute access is not allowed"),
    ("(lambda: 1)()", [], "unknown function"),
    ("lambda: x", [], "lambda is not allowed"),
    ("x[0]", [], "indexing is not allowed"),
    ("'abc' * x", [], "is not allowed"),
    ("x if x else x", [], "IfExp is not allowed"),
    ("(y := x)", [], "NamedExpr is not allowed"),
    ("exp(x, x)", [], "exp() takes 1 argument, got 2"),
    ("exp(x=1)", [], "no keywords"),
    ("sum", [], "is a function"),
    ("x +", [], "column 4: invalid syntax"),                                # syntax errors
    ("(x", [], "column 1: '(' was never closed"),
    ("x\x00", [], "column 2: control character U+0000"),
    ("x +\ny", [], "column 4: control character U+000A"),
    ("2 * 3", [], "no input names"),
    ("W @ x", ["W=[[1,2,3],[4,5,6]]", "x=[1,2]"], "column 1: matmul: cannot combine shapes (2, 3), (2,)"),
    ("x + y", ["x=[1,2]", "y=[1,2,3]"], "column 1: add: cannot combine shapes"),
    ("log(x)", ["x=-1"], "not finite"),
    ("exp(x)", ["x=1000"], "not finite"),
    ("1 / x", ["x=0"], "not finite"),
    ("x", ["x=__import__('os')"], "expected a number or a list"),
    ("x", ["x=[[[1]]]"], "at most 2 dimensions"),
    ("x", ["x=[1,[2]]"], "rows of different lengths"),
    ("x", ["x=[" + ",".join(["1"] * 2000) + "]"], "at most 1000 are allowed"),
    ("x", ["x=[" + ",".join(["1"] * 101) + "]"], "at most 100 numbers along each axis"),
    ("x", ["x=1e999"], "finite"),
    ("x", ["x"], "expected NAME=VALUE"),
    ("x", ["x=1", "x=2"], "given twice"),
    ("x", ["x=1", "y=2"], "no input named y"),
    ("x * y", ["x=1"], "no value for y"),
]


@pytest.mark.parametrize(("expression", "at", "message"), HOSTILE, ids=[h[0][:25] for h in HOSTILE])
def test_hostile_expressions_are_one_line_errors(expression, at, message):
    args = ["backprop"]
    for item in at or (["x=1"] if "y" not in expression else ["x=1", "y=1"]):
        args += ["--at", item]
    result = run(*args, "--", expression)  # after --, an expression may start with "-"
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_length_limit_is_checked_before_parsing():
    with pytest.raises(ConfigError, match=f"at most {MAX_CHARS}"):
        evaluate("x" * (MAX_CHARS + 1), {})


def test_parse_value():
    np.testing.assert_array_equal(parse_value("W", "[[0.1, -0.5], [3, +4]]"), [[0.1, -0.5], [3.0, 4.0]])
    assert parse_value("x", "-2").shape == ()
    with pytest.raises(ConfigError, match="expected a number"):
        parse_value("x", "--2")
