"""YAML config -> typed, validated ``Config``; ``--set section.key=value`` overrides.

A config file has the sections ``data``, ``features``, ``model``, ``optim``,
``train``, ``search``, ``output`` and the top-level key ``seed``. Every key has a
type and a range; anything else is a ``ConfigError`` (exit 2) that names the
key, the file and line, and what was expected or the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cs_nets import registry
from cs_nets.errors import ConfigError
from cs_nets.files.untrusted import clip, clip_text, read_text

# Bounds on what a config may be, checked while reading it: a YAML alias can name a
# collection that names another ("billion laughs"), so a small file can stand for
# billions of values; and PyYAML composes nested collections recursively.
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
    return _load_yaml(text, source)[0]


def _load_yaml(text: str, source: str):
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
    size, depth = {}, {}  # id(node) -> expanded size / depth, once the node is finished
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
    seen = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if ident in seen:
            raise ConfigError(f"{source}:{line}: duplicate key {clip(key_node.value)} "
                              f"(lines {seen[ident]} and {line})")
        seen[ident] = line


def _opt(default, doc, *, choices=None, min=None, gt=None, max=None):
    """A config field with its validation rules and a one-line description."""
    return field(default=default, metadata=dict(doc=doc, choices=choices, min=min, gt=gt, max=max))


def _opt_factory(factory, doc, *, gt=None):
    return field(default_factory=factory, metadata=dict(doc=doc, gt=gt))


@dataclass
class DataConfig:
    source: str = _opt("cifar10", "where images come from", choices=registry.DATA_SOURCES)
    dir: str | None = _opt(None, "data folder (else $CS_NETS_DATA, else ~/.cache/cs_nets)")
    format: str = _opt("python", "archive layout to download", choices=registry.ARCHIVE_FORMATS)
    url: str | None = _opt(None, "archive URL of a mirror (default: the official one)")
    md5: str | None = _opt(None, "MD5 of the archive at `url`")
    num_train: int | None = _opt(None, "training images (default: all but the validation ones)", gt=0)
    num_val: int = _opt(1000, "validation images carved from the training set", gt=0)
    shuffle: bool = _opt(False, "draw the validation split at random (seeded) instead of the last images")
    normalize: str = _opt("mean", "pixel preprocessing fit on the training split",
                          choices=registry.NORMALIZATIONS)
    dtype: str = _opt("float32", "floating type of model inputs and parameters", choices=registry.DTYPES)
    synthetic_train: int = _opt(2000, "training images of the synthetic source", gt=0)
    synthetic_test: int = _opt(500, "test images of the synthetic source", gt=0)
    points_per_class: int = _opt(100, "2-D sources: training points per class (the test split is as many more)",
                                 gt=0)
    noise: float = _opt(0.1, "2-D sources: std of the Gaussian noise added to each coordinate", min=0.0)
    classes: int | None = _opt(None, "2-D sources: number of classes (default: 2 for circles, 3 otherwise)",
                               min=2)


@dataclass
class ModelConfig:
    type: str = _opt("linear", "model", choices=registry.MODEL_TYPES)
    loss: str = _opt("softmax", "data loss", choices=registry.LOSSES)
    reg: float = _opt(0.0, "L2 strength: loss += reg * sum(W**2) over weight matrices", min=0.0)
    hidden_dims: list[int] = _opt_factory(lambda: [100], "hidden layer sizes (two_layer: exactly one)", gt=0)
    activation: str = _opt("relu", "hidden activation",
                           choices=registry.ACTIVATIONS)
    init: float | str | None = _opt(None, "weight init: a std, 'he' or 'xavier' (default: the model's own)")


@dataclass
class OptimConfig:
    learning_rate: float = _opt(1e-3, "initial learning rate", gt=0.0)
    schedule: str = _opt("constant", "learning-rate schedule over epochs", choices=registry.SCHEDULES)
    lr_decay: float = _opt(1.0, "step schedule: lr is multiplied by this after every epoch", gt=0.0, max=1.0)
    momentum: float = _opt(0.0, "momentum coefficient (0 = plain SGD)", min=0.0, max=0.999)
    nesterov: bool = _opt(False, "Nesterov momentum")


@dataclass
class TrainConfig:
    batch_size: int = _opt(200, "images per minibatch", gt=0)
    num_epochs: int = _opt(10, "passes over the training split", gt=0)
    patience: int | None = _opt(None, "stop after this many epochs without a better validation accuracy", gt=0)
    train_eval_size: int = _opt(1000, "fixed training subsample scored for train_accuracy each epoch", gt=0)
    checkpoint_every: int = _opt(1, "save the whole training state every this many epochs (for --resume)", gt=0)
    hflip: bool = _opt(False, "augment: flip each minibatch image left-right with probability 1/2 (pixels only)")


@dataclass
class SearchConfig:
    attempts: int = _opt(1000, "random weight matrices tried", gt=0, max=10_000_000)
    scale: float = _opt(1e-4, "std of the random weights", gt=0.0)
    subsample: int | None = _opt(None, "score each attempt on this many training images (default: all)", gt=0)


@dataclass
class OutputConfig:
    dir: str | None = _opt(None, "run directory (default: runs/<config name>-<timestamp>)")
    plot: bool = _opt(False, "write the PNG pictures at the end of training")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: list[dict] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = 0
    name: str = "run"  # taken from the file name, not from the file

    def to_dict(self) -> dict:
        """The resolved config as plain data (what is written to config.yaml)."""
        out = dataclasses.asdict(self)
        out.pop("name")
        return out


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
_SECTION_CLASSES = {
    "data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
    "train": TrainConfig, "search": SearchConfig, "output": OutputConfig,
}
TOP_LEVEL = ("features", "seed")

# Old keys still read, each with a one-line warning: (section, key) -> (new key, convert).
DEPRECATED = {("model", "hidden_dim"): ("hidden_dims", lambda value: [value])}


class ConfigDeprecationWarning(UserWarning):
    """A config key that still works but has a new name (the CLI prints it as one line)."""


class _Where:
    """Tells where a key came from: `file:line` or `--set key=value`."""

    def __init__(self, source: str, lines: dict[tuple, int] | None = None):
        self.source = source
        self.lines = lines or {}

    def __call__(self, path: tuple) -> str:
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source


def _key_lines(node, prefix=()) -> dict[tuple, int]:
    """Map each mapping-key path, e.g. ('model', 'reg'), to its 1-based line in the YAML."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (str(key_node.value),)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, path))
    return lines


def _parse_yaml(text: str, source: str) -> tuple[dict, dict]:
    data, node = _load_yaml(text, source)
    if data is None:  # nothing but comments, blank lines or null: most likely a truncated or wrong file
        raise ConfigError(f"{source}: the config is empty; write at least one section "
                          f"(an explicit '{{}}' means all defaults)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(data).__name__}")
    return data, _key_lines(node)


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5) if len(key) < 100 else []
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(valid))}"


def _type_name(tp) -> str:
    names = []
    for t in typing.get_args(tp) or (tp,):
        names.append("null" if t is type(None) else getattr(t, "__name__", str(t)))
    return " or ".join(names)


def _coerce(value, tp, what: str):
    """Check `value` against the annotation `tp`; return it converted (int -> float where a float is wanted)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, what)
            except ConfigError:
                continue
        raise ConfigError(f"{what}: expected {_type_name(tp)}, got {clip(value)}")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"{what}: expected a finite number, got {clip(value)}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, list):
            return [_coerce(v, item_tp, f"{what}[{i}]") for i, v in enumerate(value)]
    else:  # pragma: no cover - only the annotations above are used
        raise TypeError(tp)
    raise ConfigError(f"{what}: expected {_type_name(tp)}, got {clip(value)}")


def _check_range(value, meta: dict, what: str):
    if value is None:
        return
    choices = meta.get("choices")
    if choices:
        if value not in choices:
            raise ConfigError(f"{what}: expected one of {', '.join(choices)}, got {clip(value)}")
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)):
            continue
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{what}: expected a value >= {meta['min']}, got {clip(v)}")
        if meta.get("gt") is not None and v <= meta["gt"]:
            raise ConfigError(f"{what}: expected a value > {meta['gt']}, got {clip(v)}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{what}: expected a value <= {meta['max']}, got {clip(v)}")


def _build_section(cls, raw, section: str, where: _Where):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where((section,))}: section '{section}' must be a mapping, got {clip(raw)}")
    raw = _renew_deprecated(raw, section, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        key = str(key)
        path = (section, key)
        if key not in fields:
            raise ConfigError(f"{where(path)}: unknown key '{section}.{clip_text(key, 60)}'{_suggest(key, fields)}")
        what = f"{where(path)}: {section}.{key}"
        value = _coerce(value, hints[key], what)
        _check_range(value, fields[key].metadata, what)
        values[key] = value
    return cls(**values)


def _renew_deprecated(raw: dict, section: str, where: _Where) -> dict:
    """`raw` with deprecated keys of `section` renamed (and warned about once each)."""
    raw = dict(raw)
    for (old_section, old_key), (new_key, convert) in DEPRECATED.items():
        if old_section != section or old_key not in raw:
            continue
        if new_key in raw:
            raise ConfigError(f"{where((section, old_key))}: {section}.{old_key} and {section}.{new_key} "
                              f"both given; keep only {section}.{new_key}")
        warnings.warn(f"{where((section, old_key))}: {section}.{old_key} is deprecated; "
                      f"use {section}.{new_key}: {convert(raw[old_key])!r}", ConfigDeprecationWarning, stacklevel=2)
        raw[new_key] = convert(raw.pop(old_key))
    return raw


def build_config(raw: dict, where: _Where, name: str = "run") -> Config:
    """Validate plain data (as read from YAML) into a ``Config``."""
    for key in raw:
        if key not in SECTIONS or key == "name":
            valid = [k for k in SECTIONS if k != "name"]
            raise ConfigError(f"{where((str(key),))}: unknown section '{clip_text(key, 60)}'"
                              f"{_suggest(str(key), valid)}")
    sections = {s: _build_section(cls, raw.get(s), s, where) for s, cls in _SECTION_CLASSES.items()}
    features = raw.get("features") or []
    if not isinstance(features, list):
        raise ConfigError(f"{where(('features',))}: features must be a list of transforms, got {clip(features)}")
    seed = _coerce(raw.get("seed", 0), int, f"{where(('seed',))}: seed")
    _check_range(seed, {"min": 0}, f"{where(('seed',))}: seed")
    config = Config(features=features, seed=seed, name=name, **sections)
    _check_features(config, where)
    if config.model.type == "two_layer" and len(config.model.hidden_dims) != 1:
        raise ConfigError(f"{where(('model', 'hidden_dims'))}: two_layer has one hidden layer, got "
                          f"model.hidden_dims={config.model.hidden_dims}; use model.type: fc_net for more")
    if config.train.hflip and config.features:
        raise ConfigError(f"{where(('train', 'hflip'))}: train.hflip flips images; it cannot be combined with features")
    if config.train.hflip and config.data.source in registry.POINT_SOURCES:
        raise ConfigError(f"{where(('train', 'hflip'))}: train.hflip flips images; "
                          f"data.source {config.data.source} gives 2-D points")
    return config


def _check_features(config: Config, where: _Where):
    """Validate and fill in the feature transforms (their schema lives with the transforms)."""
    if not config.features:
        return
    from cs_nets.features import is_point_transforms, normalize_transforms

    try:
        config.features = normalize_transforms(config.features)
    except ConfigError as err:
        raise ConfigError(f"{where(('features',))}: {clip_text(err, 300)}") from None
    points = config.data.source in registry.POINT_SOURCES
    if points != is_point_transforms(config.features):
        kind = "2-D points" if points else "images"
        wanted = registry.POINT_FEATURE_TYPES if points else \
            [t for t in registry.FEATURE_TYPES if t not in registry.POINT_FEATURE_TYPES]
        raise ConfigError(f"{where(('features',))}: data.source {config.data.source} gives {kind}; "
                          f"its features can only be {', '.join(wanted)}, "
                          f"got {', '.join(t['type'] for t in config.features)}")


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """'model.reg=1e-3' -> (('model', 'reg'), 0.001); the value is read as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {clip(text)}: expected section.key=value")
    parsed = yaml_load(value, f"--set {clip(text)}") if value.strip() else None
    return tuple(key.split(".")), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set each `section.key=value` into the raw dict (validation happens afterwards)."""
    for text in overrides:
        path, value = parse_override(text)
        if len(path) == 1 and path[0] in TOP_LEVEL:
            raw[path[0]] = value
            continue
        if len(path) != 2:
            raise ConfigError(f"--set {clip(text)}: expected section.key=value (or seed=N, features=[...])")
        section, key = path
        if section not in _SECTION_CLASSES:
            raise ConfigError(f"--set {clip(text)}: unknown section '{clip_text(section, 60)}'"
                              f"{_suggest(section, _SECTION_CLASSES)}")
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {clip(text)}: section '{section}' is not a mapping")
        for (old_section, old_key), (new_key, _) in DEPRECATED.items():
            if old_section == section and key in (old_key, new_key):  # --set replaces either spelling
                target.pop(old_key, None)
                target.pop(new_key, None)
        target[key] = value
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when `path` is None) and apply `--set` overrides."""
    overrides = list(overrides or [])
    if path is None:
        raw, lines, source, name = {}, {}, "defaults", "run"
    else:
        path = Path(path)
        text = read_text(path, "config", MAX_CONFIG_BYTES, error=ConfigError)
        raw, lines = _parse_yaml(text, str(path))
        source, name = str(path), path.stem
    # Keys set on the command line are reported as such, not with the file's line.
    overridden = {parse_override(o)[0] for o in overrides}
    raw = apply_overrides(raw, overrides)
    where = _OverrideAwareWhere(source, lines, overridden)
    return build_config(raw, where, name=name)


class _OverrideAwareWhere(_Where):
    def __init__(self, source, lines, overridden: set[tuple]):
        super().__init__(source, lines)
        self.overridden = overridden

    def __call__(self, path: tuple) -> str:
        if path in self.overridden:
            return f"--set {'.'.join(path)}"
        return super().__call__(path)


def config_from_dict(raw: dict, name: str = "run") -> Config:
    """Validate a resolved config dict (e.g. the config.yaml of a run directory)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    return build_config(raw, _Where("config"), name=name)


def dump_config(config: Config) -> str:
    """YAML text of the resolved config, sections in their usual order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


def reference_table() -> str:
    """Every config key as a Markdown table: key, default, allowed values, meaning.

    ``csnets config --reference`` prints it; the README's config table is this text.
    """
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for section, cls in _SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            meta = f.metadata
            allowed = ", ".join(meta["choices"]) if meta.get("choices") else ""
            for name, op in (("min", ">="), ("gt", ">"), ("max", "<=")):
                if meta.get(name) is not None:
                    allowed += f"{'; ' if allowed else ''}{op} {meta[name]}"
            rows.append(f"| `{section}.{f.name}` | `{default!r}` | {allowed} | {meta.get('doc', '')} |")
    return "\n".join(rows) + "\n"
