"""YAML as cs_nets reads it from users: safe, bounded, with the line of every key.

A YAML alias can name a collection that names another ("billion laughs"), so a
small file can stand for billions of values, and PyYAML composes nested
collections recursively: every document is checked against the bounds below
before it is built. Configs and sweep specs are both read here.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cs_nets.errors import ConfigError
from cs_nets.files.untrusted import clip, clip_text, read_text

MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 20_000  # after alias expansion; a scalar counts 1 per 100 characters


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent floats without a dot (1e-3), as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text: str, source: str = "YAML"):
    """Parse YAML text with the config's rules (safe; 1e-3 is a float), within the bounds above.

    ConfigError naming `source` for a syntax error, nesting deeper than MAX_YAML_DEPTH,
    more than MAX_YAML_NODES values once aliases are expanded, a recursive alias, or a
    key given twice in one mapping.
    """
    return load_yaml_document(text, source)[0]


def load_yaml_document(text: str, source: str):
    """(data, root node or None) of one YAML document, checked as ``yaml_load`` says."""
    try:
        _check_nesting(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _check_graph(node, source)
            return loader.construct_document(node), node
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {clip_text(problem, 200)}") from None
    except ConfigError:
        raise
    except Exception as err:  # PyYAML's constructors: a timestamp 2024-13-45 (ValueError), '!!float' (IndexError)
        raise ConfigError(f"{source}: cannot read a value ({type(err).__name__}: {clip_text(err, 200)})") from None


def _check_nesting(text: str, source: str) -> None:
    """Refuse collections nested deeper than MAX_YAML_DEPTH, from the parser's flat event stream
    (before the recursive composer sees them)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(f"{source}:{event.start_mark.line + 1}: collections nested more than "
                                  f"{MAX_YAML_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_graph(root, source: str) -> None:
    """Walk the composed node graph once (aliases are shared nodes): refuse cycles, expansion beyond
    MAX_YAML_NODES or MAX_YAML_DEPTH, and duplicate keys. Iterative, so alias chains cannot
    exhaust the Python stack."""
    size: dict[int, int] = {}  # id(node) -> expanded size / depth, once the node is finished
    depth: dict[int, int] = {}  # -> expanded size / depth, once the node is finished
    stack, open_ = [(root, False)], set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            size[key] = _own_size(node) + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            open_.discard(key)
            if size[key] > MAX_YAML_NODES:
                raise ConfigError(f"{source}: the YAML stands for more than {MAX_YAML_NODES} values once its "
                                  f"aliases are expanded (line {node.start_mark.line + 1}): refused")
            if depth[key] > MAX_YAML_DEPTH + 1:
                raise ConfigError(f"{source}:{node.start_mark.line + 1}: aliases nest collections more than "
                                  f"{MAX_YAML_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in open_:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: a recursive alias (a collection that "
                              f"contains itself)")
        open_.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, source)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _own_size(node) -> int:
    return 1 + len(node.value) // 100 if isinstance(node, yaml.ScalarNode) else 1


def _check_duplicate_keys(node, source: str) -> None:
    """A key given twice in one mapping is a mistake (YAML says so; PyYAML keeps the last)."""
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if ident in seen:
            raise ConfigError(f"{source}:{line}: duplicate key {clip(key_node.value)} "
                              f"(lines {seen[ident]} and {line})")
        seen[ident] = line


def key_lines(node, prefix=()) -> dict[tuple, int]:
    """Map each mapping-key path, e.g. ('model', 'reg'), to its 1-based line in the YAML."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (str(key_node.value),)
            lines[path] = key_node.start_mark.line + 1
            lines.update(key_lines(value_node, path))
    return lines


def read_yaml_file(path: str | Path, what: str) -> tuple[object, dict[tuple, int]]:
    """(data, key lines) of a YAML file a user handed us: a regular file of at most
    MAX_CONFIG_BYTES of UTF-8, checked as ``yaml_load`` says. ConfigError otherwise."""
    text = read_text(Path(path), what, MAX_CONFIG_BYTES, error=ConfigError)
    data, node = load_yaml_document(text, str(path))
    return data, key_lines(node)
