"""A sweep spec: the YAML file ``csnets sweep`` reads, validated like a config, and its trials.

    base: ../two_layer.yaml          # the config every trial starts from (relative to this file)
    metric: val_accuracy             # maximized
    num_samples: 16                  # random draws; grid values are crossed with them
    max_concurrent: 2                # trials at once (default: as many as the CPUs allow)
    cpus_per_trial: 1                # also each trial's BLAS thread count
    seed: 0                          # the search's own seed
    task: train                      # or random_search (the lecture's strategy #1)
    scheduler: {type: asha, grace_period: 2, reduction_factor: 3}
    parameters:                      # any config key, dotted
      optim.learning_rate: {loguniform: [1.0e-3, 1.0e-2]}
      model.hidden_dims: {choice: [[500], [1000]]}
      seed: [0, 1]                   # a plain list is a grid

``load_spec`` validates the file and its base config (with ``--set`` overrides);
``expand_trials`` draws every trial's values with ``default_rng(seed)`` and
validates each trial's resolved config, so a bad value fails before anything runs
(ConfigError naming the spec's file:line and the trial), not in trial 37;
``check_trials_fit`` does the same for sizes that cannot fit in memory.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cs_nets import registry
from cs_nets.config import (
    DEPRECATED,
    SECTION_CLASSES,
    TOP_LEVEL,
    Config,
    ConfigDeprecationWarning,
    OverrideAwareWhere,
    Where,
    build_config,
    build_section,
    check_range,
    coerce,
    load_config,
    parse_override,
    read_config_file,
    suggest,
    yaml_load,
)
from cs_nets.errors import ConfigError

SIGNIFICANT_DIGITS = 4  # drawn floats are rounded, so that tables and --set commands stay readable
MAX_TRIALS = 10_000  # a sweep of more trials is a typo (num_samples: 1e9), refused before anything is expanded


def _opt(default, doc, **rules):
    return field(default=default, metadata=dict(doc=doc, **rules))


@dataclass
class SchedulerSpec:
    """How trials are stopped early (``type: none``: never)."""

    type: str = _opt("none", "none: every trial runs to the end; asha: stop trials that fall behind (Ray: ASHA; "
                             "local: synchronous successive halving)",
                     choices=registry.SWEEP_SCHEDULERS)
    grace_period: int = _opt(1, "asha: epochs before a trial may be stopped", gt=0)
    reduction_factor: int = _opt(4, "asha: 1/reduction_factor of the trials go on at each rung", min=2)


@dataclass
class SweepOptions:
    """The spec's keys besides ``scheduler`` and ``parameters``."""

    base: str = _opt(None, "the config every trial starts from (relative to the spec file)")
    metric: str = _opt("val_accuracy", "maximized", choices=registry.SWEEP_METRICS)
    num_samples: int = _opt(1, "random draws; grid values are crossed with them", gt=0)
    max_concurrent: int | None = _opt(None, "trials at once (default: as many as the CPUs allow)", gt=0)
    cpus_per_trial: int = _opt(1, "CPUs Ray reserves for a trial; also its BLAS thread count", gt=0)
    seed: int = _opt(0, "the search's own seed (draws of the random parameters)", min=0)
    task: str = _opt("train", "what each trial runs: train (csnets train) or random_search (csnets random-search)",
                     choices=registry.TASKS)


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(SweepOptions)) + ("scheduler", "parameters")


@dataclass
class Parameter:
    """One swept config key and how its values are drawn.

    key: the dotted config key ('optim.learning_rate', 'seed'); a deprecated alias is
        already renamed, and ``convert`` turns its values into the new key's.
    distribution: one of registry.SWEEP_DISTRIBUTIONS.
    args: grid and choice: the values; uniform, loguniform, randint: [low, high].
    where: 'spec.yaml:12', for messages.
    """

    key: str
    distribution: str
    args: list
    where: str
    convert: Any = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))

    def draw(self, rng: np.random.Generator):
        """One random value (not for grid parameters)."""
        low, high = (self.args + [None, None])[:2]
        if self.distribution == "choice":
            value = copy.deepcopy(self.args[int(rng.integers(len(self.args)))])
        elif self.distribution == "uniform":
            value = _round(low + (high - low) * rng.random())
        elif self.distribution == "loguniform":
            value = _round(math.exp(math.log(low) + (math.log(high) - math.log(low)) * rng.random()))
        elif self.distribution == "randint":
            value = int(rng.integers(low, high))  # high excluded, as in NumPy and Ray
        else:
            raise ValueError(f"{self.key}: a {self.distribution} parameter is not drawn")
        return self.convert(value) if self.convert else value


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


@dataclass
class SweepSpec:
    """A validated spec. base_config: the base config with the ``--set`` overrides applied."""

    path: Path
    options: SweepOptions
    scheduler: SchedulerSpec
    parameters: list[Parameter]
    base_path: Path
    base_config: Config
    overrides: list[str]
    base_where: Where  # where a base key was set: base file:line, or --set
    where: Where  # the spec's own lines

    def to_dict(self) -> dict:
        """The spec as plain data (written to DIR/sweep.json)."""
        return {**dataclasses.asdict(self.options), "scheduler": dataclasses.asdict(self.scheduler),
                "parameters": {p.key: {p.distribution: p.args} for p in self.parameters}}


@dataclass
class Trial:
    """One trial: its name (its run directory under the sweep folder), swept values and config."""

    index: int
    name: str
    params: dict  # {dotted key: value}, in the spec's order
    config: Config

    @property
    def overrides(self) -> list[str]:
        """The swept values as --set arguments: ['optim.learning_rate=0.003162', ...]."""
        return [f"{key}={format_value(value)}" for key, value in self.params.items()]


def format_value(value) -> str:
    """A value as YAML text that reads back as the same value (for --set and the tables)."""
    if isinstance(value, str) and yaml_load(value) == value:
        return value
    return json.dumps(value)


# ----------------------------------------------------------------------------- reading


def load_spec(path, overrides=()) -> SweepSpec:
    """Read and validate a sweep spec and its base config (with ``--set`` overrides of the base).

    ConfigError (exit 2) for anything wrong, naming the file and line and the closest key.
    """
    path = Path(path)
    raw, lines = read_config_file(path, "sweep spec")
    where = Where(str(path), lines)
    for key in raw:
        if key not in SPEC_KEYS:
            raise ConfigError(f"{where((str(key),))}: unknown key '{key}'{suggest(str(key), SPEC_KEYS)}")
    options = _options(raw, where, path)
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{where(('parameters',))}: 'parameters' must map config keys to values to try, "
                          f"e.g. optim.learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}")
    parameters = [_parameter(str(key), value, where(("parameters", str(key)))) for key, value in params.items()]
    base_path = path.parent / Path(options.base).expanduser()
    if not base_path.is_file():
        raise ConfigError(f"{where(('base',))}: base: no config file {base_path}")
    return _build(path, options, raw.get("scheduler"), parameters, base_path, overrides, where)


def grid_spec(config_path, grids, overrides=(), *, jobs: int | None = None, task: str = "train") -> SweepSpec:
    """A spec without a file: the config `config_path` swept over ``--grid key=v1,v2`` options.

    grids: ['optim.learning_rate=1e-3,3e-3', 'model.hidden_dims=[16,8],[32]']; values are
        split on commas outside brackets and read as YAML, so a list is one value.
    The spec's path is the config's (the sweep folder is named after it).
    """
    config_path = Path(config_path)
    if not config_path.is_file():
        raise ConfigError(f"--config: no config file {config_path}")
    if not grids:
        raise ConfigError("--config needs at least one --grid section.key=v1,v2 (or give a sweep SPEC instead)")
    if task not in registry.TASKS:
        raise ConfigError(f"task: expected one of {', '.join(registry.TASKS)}, got {task!r}")
    parameters = []
    for text in grids:
        key, sep, values = str(text).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {text}: expected section.key=v1,v2,...")
        words = split_values(values, f"--grid {text}")
        parsed = [yaml_load(word, f"--grid {text}") for word in words]
        parameters.append(_parameter(key, parsed, f"--grid {key}"))
    options = SweepOptions(base=str(config_path), max_concurrent=jobs, task=task)
    return _build(config_path, options, None, parameters, config_path, overrides, Where(f"--grid of {config_path}"))


def split_values(text: str, what: str) -> list[str]:
    """'1e-3,[16,8],{a: 1}' -> ['1e-3', '[16,8]', '{a: 1}']: commas inside brackets belong to the value."""
    values, current, depth = [], "", 0
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                break
        elif ch == "," and depth == 0:
            values.append(current)
            current = ""
            continue
        current += ch
    if depth != 0:
        raise ConfigError(f"{what}: unbalanced brackets")
    values.append(current)
    if any(not v.strip() for v in values):
        raise ConfigError(f"{what}: an empty value")
    return values


def _build(path: Path, options: SweepOptions, scheduler_raw, parameters: list[Parameter], base_path: Path,
           overrides, where: Where) -> SweepSpec:
    """The parts every spec shares: scheduler, unique keys, the base config with ``--set``, the trial bound."""
    scheduler = build_section(SchedulerSpec, scheduler_raw, "scheduler", where)
    if scheduler.type == "none":
        for key in ("grace_period", "reduction_factor"):
            if key in (scheduler_raw or {}):
                raise ConfigError(f"{where(('scheduler', key))}: scheduler.{key} is for type: asha, "
                                  f"not type: none")
    _check_unique(parameters)
    overrides = list(overrides)
    base_config = load_config(base_path, overrides)
    for text_ in overrides:
        key = ".".join(parse_override(text_)[0])
        for p in parameters:
            if p.key == key or (p.convert and key == _alias_of(p)):
                raise ConfigError(f"--set {text_}: {p.key} is swept by {p.where}; remove it from one of them")
    _, base_lines = read_config_file(base_path)
    overridden = {parse_override(o)[0] for o in overrides}
    spec = SweepSpec(path, options, scheduler, parameters, base_path, base_config, overrides,
                     OverrideAwareWhere(str(base_path), base_lines, overridden), where)
    check_trial_count(spec)
    return spec


def trial_count(spec: SweepSpec) -> int:
    """num_samples x the size of the grid: how many trials ``expand_trials`` makes (computed, not expanded)."""
    return spec.options.num_samples * math.prod(len(p.args) for p in spec.parameters if p.distribution == "grid")


def check_trial_count(spec: SweepSpec) -> None:
    """ConfigError (exit 2) for a sweep of more than MAX_TRIALS trials, before any is expanded."""
    count = trial_count(spec)
    if count > MAX_TRIALS:
        sizes = " x ".join(str(len(p.args)) for p in spec.parameters if p.distribution == "grid")
        shape = f"num_samples {spec.options.num_samples}" + (f" x grid {sizes}" if sizes else "")
        raise ConfigError(f"{spec.where(('num_samples',))}: {shape} is {count:,} trials, more than a sweep may "
                          f"have ({MAX_TRIALS:,}); sweep fewer values")


def _options(raw: dict, where: Where, path: Path) -> SweepOptions:
    fields = {f.name: f for f in dataclasses.fields(SweepOptions)}
    hints = {"base": str, "metric": str, "num_samples": int, "max_concurrent": int | None,
             "cpus_per_trial": int, "seed": int, "task": str}
    values = {}
    for key, f in fields.items():
        if key not in raw:
            continue
        what = f"{where((key,))}: {key}"
        value = coerce(raw[key], hints[key], what)
        check_range(value, f.metadata, what)
        values[key] = value
    if "base" not in values:
        raise ConfigError(f"{path}: missing key 'base' (the config every trial starts from, e.g. "
                          f"base: ../two_layer.yaml)")
    return SweepOptions(**values)


def _config_keys() -> list[str]:
    """Every dotted config key a sweep may vary (output.* is the sweep's business)."""
    keys = [f"{section}.{f.name}" for section, cls in SECTION_CLASSES.items() if section != "output"
            for f in dataclasses.fields(cls)]
    return keys + list(TOP_LEVEL)


def _alias_of(p: Parameter) -> str | None:
    for (section, old), (new, _) in DEPRECATED.items():
        if p.key == f"{section}.{new}":
            return f"{section}.{old}"
    return None


def _parameter(key: str, value, where: str) -> Parameter:
    """Validate one entry of ``parameters`` (its key and its distribution)."""
    parts = tuple(key.split("."))
    convert = None
    if len(parts) == 2 and parts in DEPRECATED:
        new, convert = DEPRECATED[parts]
        warnings.warn(f"{where}: {key} is deprecated; sweep {parts[0]}.{new} instead",
                      ConfigDeprecationWarning, stacklevel=2)
        key = f"{parts[0]}.{new}"
    elif parts[0] == "output":
        raise ConfigError(f"{where}: {key} cannot be swept: every trial writes its run directory "
                          f"into the sweep folder (--out)")
    elif key not in _config_keys():
        raise ConfigError(f"{where}: unknown config key '{key}' in parameters{suggest(key, _config_keys())}")

    if isinstance(value, list):
        distribution, args = "grid", value
    elif isinstance(value, dict) and len(value) == 1:
        ((distribution, args),) = value.items()
        distribution = str(distribution)
        if distribution not in registry.SWEEP_DISTRIBUTIONS:
            raise ConfigError(f"{where}: {key}: unknown distribution '{distribution}'"
                              f"{suggest(distribution, registry.SWEEP_DISTRIBUTIONS)}")
    else:
        raise ConfigError(f"{where}: {key}: expected a list of values (a grid) or one of "
                          f"{{grid: [...]}}, {{choice: [...]}}, {{uniform: [low, high]}}, "
                          f"{{loguniform: [low, high]}}, {{randint: [low, high]}}; got {value!r}")
    what = f"{where}: {key}: {distribution}"
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{what}: expected a non-empty list, got {args!r}")
    if distribution in ("grid", "choice"):
        if convert:  # a deprecated alias: its listed values are converted once, here
            args = [convert(v) for v in args]
            convert = None
        return Parameter(key, distribution, args, where)
    if len(args) != 2:
        raise ConfigError(f"{what}: expected [low, high], got {args!r}")
    low, high = args
    kind = int if distribution == "randint" else (int, float)
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in args):
        expected = "whole numbers" if distribution == "randint" else "numbers"
        raise ConfigError(f"{what}: expected [low, high] as {expected}, got {args!r}")
    if not low < high:
        raise ConfigError(f"{what}: expected low < high, got {args!r}")
    if distribution == "loguniform" and low <= 0:
        raise ConfigError(f"{what}: expected 0 < low < high (a log scale), got {args!r}")
    if distribution != "randint":
        args = [float(low), float(high)]
    return Parameter(key, distribution, args, where, convert)


def _check_unique(parameters: list[Parameter]) -> None:
    seen: dict[str, str] = {}
    for p in parameters:
        if p.key in seen:
            raise ConfigError(f"{p.where}: {p.key} is swept twice (also at {seen[p.key]})")
        seen[p.key] = p.where


# ----------------------------------------------------------------------------- trials


class _TrialWhere(Where):
    """Swept keys are reported at their line of the spec, the others at the base config's."""

    def __init__(self, base: Where, swept: dict[tuple, str]):
        super().__init__(base.source, base.lines)
        self.base, self.swept = base, swept

    def __call__(self, path: tuple) -> str:
        return self.swept.get(path) or self.base(path)


def trial_names(count: int) -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f"trial-{i:0{width}d}" for i in range(count)]


def expand_trials(spec: SweepSpec) -> list[Trial]:
    """Every trial of the sweep, each config validated.

    Order: for each of ``num_samples`` draws, every combination of the grid values
    (the first grid parameter varies slowest); random parameters are drawn, in the
    spec's order, from one default_rng(seed), so the same spec gives the same trials.
    """
    check_trial_count(spec)
    rng = np.random.default_rng(spec.options.seed)
    grid = [p for p in spec.parameters if p.distribution == "grid"]
    combos = list(itertools.product(*(p.args for p in grid)))
    names = trial_names(spec.options.num_samples * len(combos))
    trials: list[Trial] = []
    for _ in range(spec.options.num_samples):
        for combo in combos:
            fixed = dict(zip((p.key for p in grid), combo))
            params = {p.key: copy.deepcopy(fixed[p.key]) if p.key in fixed else p.draw(rng)
                      for p in spec.parameters}
            index = len(trials)
            trials.append(Trial(index, names[index], params, trial_config(spec, params, names[index])))
    _check_scheduler(spec, trials)
    return trials


def trial_config(spec: SweepSpec, params: dict, name: str = "trial") -> Config:
    """The base config with `params` ({dotted key: value}) set, validated; output.dir is cleared."""
    raw = copy.deepcopy(spec.base_config.to_dict())
    raw["output"]["dir"] = None
    for key, value in params.items():
        *section, last = key.split(".")
        target = raw[section[0]] if section else raw
        target[last] = copy.deepcopy(value)
    swept = {p.path: p.where for p in spec.parameters}
    try:
        return build_config(raw, _TrialWhere(spec.base_where, swept), name=spec.base_config.name)
    except ConfigError as err:
        raise ConfigError(f"{err} (in {name}: {describe_params(params)})") from None


def describe_params(params: dict) -> str:
    """'optim.learning_rate=0.001, model.reg=0': a trial's swept values, as messages name them."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def check_trials_fit(trials: list[Trial], available: int | None = None) -> None:
    """ConfigError (exit 2) naming the first trial whose run cannot fit in memory, with its swept values.

    Each trial's resolved config goes through cs_nets.memory.check_fits, the estimate
    ``csnets train`` makes, against the memory this process may use, read once for all
    trials (``available``: that many bytes instead; unknown: nothing is refused). The
    sweep calls it before its folder is locked and before Ray starts or any data is
    loaded, so ``data.synthetic_train: [1.0e10]`` or a drawn ``model.hidden_dims`` of
    [1000000000] is one line, not a MemoryError in the driver or in trial 37. 10,000
    trials (MAX_TRIALS) take about a tenth of a second.
    """
    from cs_nets.memory import available_memory, check_fits, resident_memory  # numpy and the models: not at import

    if available is None:
        free = available_memory()
        if free is None:
            return
        available = free + resident_memory()
    for trial in trials:
        try:
            check_fits(trial.config, available=available)
        except ConfigError as err:
            raise ConfigError(f"{err} (in {trial.name}: {describe_params(trial.params)})") from None


def _check_scheduler(spec: SweepSpec, trials: list[Trial]) -> None:
    if spec.scheduler.type != "asha":
        return
    if spec.options.task != "train":
        raise ConfigError(f"{spec.where(('scheduler', 'type'))}: scheduler asha stops trainings after an epoch; "
                          f"a {spec.options.task} trial has no epochs: use type: none")
    longest = max(t.config.train.num_epochs for t in trials)
    if spec.scheduler.grace_period >= longest:
        where = spec.where(("scheduler", "grace_period"))
        raise ConfigError(f"{where}: scheduler.grace_period ({spec.scheduler.grace_period}) is not below the "
                          f"trials' train.num_epochs ({longest}): ASHA would never stop a trial; lower it or "
                          f"use type: none")
