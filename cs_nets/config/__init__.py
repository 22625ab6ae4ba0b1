"""Configuration: YAML file -> typed, validated ``Config``; ``--set`` overrides; the reference table.

    config = load_config("configs/two_layer.yaml", ["optim.learning_rate=5e-3"])
    config.model.hidden_dims      # [1000]
    dump_config(config)           # the resolved YAML a run writes to config.yaml

Modules: ``yaml_reader`` (safe, bounded YAML with key lines), ``schema`` (the sections
and their validation), ``overrides`` (``--set``), ``reference`` (the key table).
Sweep specs are validated with the same public pieces.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cs_nets.config.overrides import OverrideAwareWhere, apply_overrides, parse_override
from cs_nets.config.reference import reference_table
from cs_nets.config.schema import (
    DEPRECATED,
    SECTION_CLASSES,
    SECTIONS,
    TOP_LEVEL,
    Config,
    ConfigDeprecationWarning,
    DataConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    SearchConfig,
    TrainConfig,
    Where,
    build_config,
    build_section,
    check_range,
    coerce,
    suggest,
)
from cs_nets.config.yaml_reader import MAX_CONFIG_BYTES, read_yaml_file, yaml_load
from cs_nets.errors import ConfigError


def parse_config_yaml(data, lines: dict, source: str) -> tuple[dict, dict]:
    """Check that YAML data read for a config (or spec) is a non-empty mapping."""
    if data is None:  # nothing but comments, blank lines or null: most likely a truncated or wrong file
        raise ConfigError(f"{source}: the config is empty; write at least one section "
                          f"(an explicit '{{}}' means all defaults)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(data).__name__}")
    return data, lines


def read_config_file(path: str | Path, what: str = "config") -> tuple[dict, dict]:
    """(raw mapping, key lines) of a YAML config or spec file, through the hardened reader."""
    data, lines = read_yaml_file(path, what)
    return parse_config_yaml(data, lines, str(path))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when `path` is None) and apply `--set` overrides."""
    overrides = list(overrides or [])
    raw: dict
    lines: dict
    if path is None:
        raw, lines, source, name = {}, {}, "defaults", "run"
    else:
        path = Path(path)
        raw, lines = read_config_file(path)
        source, name = str(path), path.stem
    # Keys set on the command line are reported as such, not with the file's line.
    overridden = {parse_override(o)[0] for o in overrides}
    raw = apply_overrides(raw, overrides)
    where = OverrideAwareWhere(source, lines, overridden)
    return build_config(raw, where, name=name)


def config_from_dict(raw: dict, name: str = "run") -> Config:
    """Validate a resolved config dict (e.g. the config.yaml of a run directory)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    return build_config(raw, Where("config"), name=name)


def dump_config(config: Config) -> str:
    """YAML text of the resolved config, sections in their usual order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


__all__ = [
    "Config", "DataConfig", "ModelConfig", "OptimConfig", "TrainConfig", "SearchConfig", "OutputConfig",
    "ConfigDeprecationWarning", "DEPRECATED", "SECTIONS", "SECTION_CLASSES", "TOP_LEVEL", "MAX_CONFIG_BYTES",
    "Where", "build_config", "build_section", "check_range", "coerce", "suggest",
    "apply_overrides", "parse_override", "OverrideAwareWhere", "reference_table",
    "yaml_load", "read_yaml_file", "read_config_file", "parse_config_yaml",
    "load_config", "config_from_dict", "dump_config",
]
