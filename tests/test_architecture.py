"""The package's layout holds: the lecture stands alone, packages talk through public
names, and imports flow one way (no cycles between rooms).

Read from the source with ``ast`` (nothing is imported), so a new module is checked
the moment it exists.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cs_nets"
LECTURE = "nn"


def modules():
    """(path, dotted module name) of every module of cs_nets."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def imports(path, module):
    """(imported module, names) of every cs_nets import in a file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cs_nets":
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] == "cs_nets":
                yield target, [a.name for a in node.names]


def room(module):
    """The room a module belongs to: its subpackage (cs_nets.nn.models.base -> nn), or itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cs_nets"


def is_package(name):
    return (PACKAGE / name).is_dir()


def test_the_lecture_package_imports_nothing_but_itself_and_errors():
    found = [f"{path.relative_to(PACKAGE.parent)}: {target}"
             for path, module in modules() if room(module) == LECTURE
             for target, _ in imports(path, module)
             if room(target) not in (LECTURE, "errors")]
    assert found == []


def test_no_module_imports_another_packages_private_names():
    found = []
    for path, module in modules():
        for target, names in imports(path, module):
            if room(target) == room(module):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                found.append(f"{path.relative_to(PACKAGE.parent)}: {target} {private}")
    assert found == []


def room_graph():
    """{room: {rooms it imports}} over the subpackages (the top-level modules cli, errors,
    registry, memory and __init__ are left out: cli is the top, the others are leaves)."""
    graph = defaultdict(set)
    for path, module in modules():
        source = room(module)
        if not is_package(source):
            continue
        for target, _ in imports(path, module):
            if is_package(room(target)) and room(target) != source:
                graph[source].add(room(target))
    return graph


def find_cycle(graph):
    """A list of rooms forming a cycle, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_rooms_import_each_other_one_way_only():
    assert find_cycle(room_graph()) is None


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
])
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle


def test_no_two_module_names_differ_only_by_a_suffix_or_plural():
    """run/run_dir/runs, gradients/gradcheck: names a newcomer confuses."""
    stems = defaultdict(list)
    for path, _ in modules():
        if path.name != "__init__.py":
            stems[path.parent].append(path.stem.lstrip("_"))
    confusing = []
    for folder, names in stems.items():
        for a in names:
            for b in names:
                if a < b and (b in (a + "s", a + "_dir") or a in (b + "s", b + "_dir")):
                    confusing.append(f"{folder.name}/{a} ~ {b}")
    assert confusing == []
