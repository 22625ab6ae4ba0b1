"""Every shipped config and sweep script is valid as it stands."""

import subprocess
from pathlib import Path

import pytest

from cs_nets.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SWEEPS = sorted((ROOT / "scripts").glob("sweep*.sh"))


def test_the_expected_configs_ship():
    names = {p.stem for p in CONFIGS}
    assert {"random_search", "linear_svm", "softmax", "two_layer", "smoke",
            "linear_svm_features", "two_layer_features"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_says_how_it_was_chosen(path):
    config = load_config(path)
    assert config.name == path.stem
    text = path.read_text()
    assert text.startswith("#")
    if path.stem != "smoke":
        assert "csnets " in text  # the command that runs it
        assert "validation" in text or "lecture" in text  # how the values were chosen


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_scripts_parse(path):
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    if path.name != "sweep.sh":
        target = path.read_text().split('/../configs/')[1].split('"')[0]
        assert (ROOT / "configs" / target).exists()
