"""--resume after the run's config.yaml was edited: refused, naming each change (key, old, new), unless
--allow-changed-config; the changes are then recorded in summary.json."""

import json
import shutil

import pytest
import yaml
from hostile import SMOKE, invoke, one_line, untouched

from cs_nets.config import load_config
from cs_nets.runs.task import run


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A smoke run stopped (as by Ctrl-C) after epoch 2 of 5: state.npz kept, status interrupted."""
    out = tmp_path_factory.mktemp("interrupted") / "run"

    def stop(metrics):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    result = run(load_config(SMOKE, ["train.num_epochs=5"]), out, on_epoch=stop)
    assert result.status == "interrupted" and (out / "state.npz").is_file()
    return out


def world_with_run(tmp_path, interrupted, edit):
    world = tmp_path / "world"
    shutil.copytree(interrupted, world / "r")
    path = world / "r" / "config.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return world


def setter(section, key, value):
    def edit(raw):
        if section is None:
            raw[key] = value
        else:
            raw[section][key] = value
    return edit


EDITS = {
    "learning rate": (setter("optim", "learning_rate", 5e-4), r"optim.learning_rate 0.001 -> 0.0005"),
    "regularization": (setter("model", "reg", 0.1), r"model.reg 0.001 -> 0.1"),
    "more epochs": (setter("train", "num_epochs", 9), r"train.num_epochs 5 -> 9"),
    "batch size": (setter("train", "batch_size", 50), r"train.batch_size 100 -> 50"),
    "momentum": (setter("optim", "momentum", 0.5), r"optim.momentum 0.9 -> 0.5"),
    "schedule": (setter("optim", "schedule", "cosine"), r"optim.schedule 'constant' -> 'cosine'"),
    "seed": (setter(None, "seed", 3), r"seed 0 -> 3"),
    "hidden sizes": (setter("model", "hidden_dims", [16]), r"model.hidden_dims \[32\] -> \[16\]"),
    "validation size": (setter("data", "num_val", 100), r"data.num_val 200 -> 100"),
    "synthetic size": (setter("data", "synthetic_train", 1000), r"data.synthetic_train 1200 -> 1000"),
    "hflip": (setter("train", "hflip", True), r"train.hflip False -> True"),
    "features added": (setter(None, "features", [{"type": "hog"}]), r"features \[\] -> \[\{"),
    "four keys: three named and a count": (
        lambda raw: (raw["optim"].update(learning_rate=0.01, momentum=0.0), raw["model"].update(reg=0.5),
                     raw["train"].update(batch_size=10)),
        r"model.reg 0.001 -> 0.5, optim.learning_rate 0.001 -> 0.01, optim.momentum 0.9 -> 0.0 \(and 1 more\)"),
}


@pytest.mark.parametrize("edit,pattern", EDITS.values(), ids=EDITS.keys())
def test_resume_refuses_an_edited_config_naming_what_changed(tmp_path, interrupted, edit, pattern):
    world = world_with_run(tmp_path, interrupted, edit)
    outcome = invoke(world, ["train", "--resume", "r", "--quiet"])
    line = one_line(outcome, 2, r"^error: --resume r: config.yaml was edited since the run started \(")
    assert pattern.replace("\\", "") in line or __import__("re").search(pattern, line), line
    assert line.endswith("restore it, or continue with the edited config with --allow-changed-config")
    untouched(outcome)  # not even the run's own folder


COSMETIC = {
    "comment and key order": lambda raw: None,  # safe_dump sorts keys and drops the comments
    "a default written out": setter("train", "checkpoint_every", 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("edit", COSMETIC.values(), ids=COSMETIC.keys())
def test_an_edit_that_changes_no_value_resumes(tmp_path, interrupted, edit):
    world = world_with_run(tmp_path, interrupted, edit)
    outcome = invoke(world, ["train", "--resume", "r", "--quiet"], own=("r", ".r.lock"))
    assert outcome.code == 0 and outcome.out.startswith("test accuracy: "), outcome.out
    untouched(outcome)
    assert "config_changes" not in json.loads((world / "r" / "summary.json").read_text())


def test_allow_changed_config_continues_and_records_the_change(tmp_path, interrupted):
    world = world_with_run(tmp_path, interrupted, setter("optim", "learning_rate", 5e-4))
    outcome = invoke(world, ["train", "--resume", "r", "--allow-changed-config", "--quiet"], own=("r", ".r.lock"))
    assert outcome.code == 0, outcome.out
    assert "warning: continuing with the edited config.yaml (optim.learning_rate 0.001 -> 0.0005)" in outcome.out
    untouched(outcome)
    summary = json.loads((world / "r" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 5
    assert summary["config_changes"] == [{"after_epoch": 2, "key": "optim.learning_rate", "old": 0.001,
                                          "new": 0.0005}]
    assert summary["config"]["optim"]["learning_rate"] == 0.0005


def test_allow_changed_config_needs_resume(tmp_path):
    (tmp_path / "w").mkdir()
    outcome = invoke(tmp_path / "w", ["train", "--config", SMOKE, "--allow-changed-config"])
    assert outcome.code == 2 and "--allow-changed-config goes with --resume" in outcome.out
    untouched(outcome)
