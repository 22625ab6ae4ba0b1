"""Every named choice is listed once (cs_nets.registry) and every consumer sees that list."""

import dataclasses
import re
from pathlib import Path

import click

from cs_nets import registry
from cs_nets.circuits.examples import EXAMPLES as BACKPROP_EXAMPLE_TABLE
from cs_nets.cli import main
from cs_nets.config import DataConfig, ModelConfig, OptimConfig, reference_table
from cs_nets.data.cifar10 import OFFICIAL
from cs_nets.data.preprocess import Normalizer
from cs_nets.features.spec import DEFAULTS as FEATURE_DEFAULTS
from cs_nets.nn.activations import ACTIVATION_NAMES
from cs_nets.nn.gradcheck import gradcheck_cases
from cs_nets.nn.losses import LOSSES
from cs_nets.nn.models import MODEL_CLASSES
from cs_nets.nn.models.base import INIT_SCHEMES

ROOT = Path(__file__).resolve().parents[1]


def choices(cls, name):
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"]


def option_choices(command, option):
    param = next(p for p in main.commands[command].params if p.name == option)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_implementations_match_the_registry():
    assert tuple(MODEL_CLASSES) == registry.MODEL_TYPES
    assert tuple(LOSSES) == registry.LOSSES
    assert ACTIVATION_NAMES == registry.ACTIVATIONS
    assert tuple(FEATURE_DEFAULTS) == registry.FEATURE_TYPES
    assert tuple(OFFICIAL) == registry.ARCHIVE_FORMATS
    assert INIT_SCHEMES == registry.INIT_SCHEMES
    assert Normalizer.MODES == registry.NORMALIZATIONS
    assert tuple(BACKPROP_EXAMPLE_TABLE) == registry.BACKPROP_EXAMPLES


def test_config_validation_uses_the_registry():
    assert choices(ModelConfig, "type") == registry.MODEL_TYPES
    assert choices(ModelConfig, "loss") == registry.LOSSES
    assert choices(ModelConfig, "activation") == registry.ACTIVATIONS
    assert choices(OptimConfig, "schedule") == registry.SCHEDULES
    assert choices(DataConfig, "source") == registry.DATA_SOURCES
    assert choices(DataConfig, "normalize") == registry.NORMALIZATIONS


def test_cli_options_use_the_registry():
    assert option_choices("gradcheck", "models") == registry.MODEL_TYPES
    assert option_choices("gradcheck", "losses") == registry.LOSSES
    assert option_choices("gradcheck", "activations") == registry.ACTIVATIONS
    assert option_choices("evaluate", "split") == registry.SPLITS
    assert option_choices("download", "fmt") == registry.ARCHIVE_FORMATS
    assert option_choices("backprop", "example") == registry.BACKPROP_EXAMPLES


def test_gradcheck_covers_every_model_loss_and_activation():
    rows = gradcheck_cases()
    assert {r["model"] for r in rows} == set(registry.MODEL_TYPES)
    assert {r["loss"] for r in rows} == set(registry.LOSSES)
    assert {r["activation"] for r in rows} - {"-"} == set(registry.ACTIVATIONS)


def test_config_guide_table_is_the_reference():
    """docs/configs.md's table is `csnets config --reference`, so it lists the registry's choices."""
    table = reference_table()
    assert table in (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    for name in (*registry.MODEL_TYPES, *registry.ACTIVATIONS, *registry.SCHEDULES, *registry.DATA_SOURCES):
        assert re.search(rf"\b{name}\b", table), name
