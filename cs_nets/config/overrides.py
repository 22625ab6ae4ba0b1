"""``--set section.key=value``: overrides read as YAML and applied before validation."""

from __future__ import annotations

from typing import Any

from cs_nets.config.schema import DEPRECATED, SECTION_CLASSES, TOP_LEVEL, Where, suggest
from cs_nets.config.yaml_reader import yaml_load
from cs_nets.errors import ConfigError
from cs_nets.files.untrusted import clip, clip_text


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
        if section not in SECTION_CLASSES:
            raise ConfigError(f"--set {clip(text)}: unknown section '{clip_text(section, 60)}'"
                              f"{suggest(section, SECTION_CLASSES)}")
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {clip(text)}: section '{section}' is not a mapping")
        for (old_section, old_key), (new_key, _) in DEPRECATED.items():
            if old_section == section and key in (old_key, new_key):  # --set replaces either spelling
                target.pop(old_key, None)
                target.pop(new_key, None)
        target[key] = value
    return raw


class OverrideAwareWhere(Where):
    def __init__(self, source, lines, overridden: set[tuple]):
        super().__init__(source, lines)
        self.overridden = overridden

    def __call__(self, path: tuple) -> str:
        if path in self.overridden:
            return f"--set {'.'.join(path)}"
        return super().__call__(path)
