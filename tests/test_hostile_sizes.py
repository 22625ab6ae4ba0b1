"""One memory estimate (cs_nets.memory) covers every source (CIFAR-10, synthetic, 2-D points), the data's
generation and the test confusion matrix: absurd sizes are one line, exit 2, before anything is written."""

import json
import shutil

import numpy as np
import pytest
import yaml
from hostile import ROOT, SMOKE, invoke, one_line, untouched

from cs_nets.config import load_config
from cs_nets.data.synthetic import make_synthetic
from cs_nets.data.toy import make_toy
from cs_nets.errors import ConfigError
from cs_nets.memory import check_fits, estimate_bytes

SPIRAL = ROOT / "configs" / "toy_spiral.yaml"
GiB = 1 << 30


@pytest.mark.parametrize("source,classes,per_class", [("spiral", 3, 150), ("circles", 2, 40), ("blobs", 7, 11)])
def test_the_estimate_of_2d_points_is_what_the_source_allocates(source, classes, per_class):
    config = load_config(SPIRAL, [f"data.source={source}", f"data.classes={classes}",
                                  f"data.points_per_class={per_class}"])
    raw = make_toy(source, per_class, classes, 0.1, seed=0)
    held = raw.X_train.nbytes + raw.X_test.nbytes + raw.y_train.nbytes + raw.y_test.nbytes
    parts = estimate_bytes(config)
    assert parts["images"] == held
    assert parts["confusion"] >= 2 * classes * classes * 8  # the matrix and its flat bincount, at least
    assert parts["generation"] >= 2 * raw.X_train.nbytes  # float64 points before the float32 copy


def test_the_estimate_of_synthetic_images_is_what_the_source_allocates():
    config = load_config(SMOKE, ["data.synthetic_train=300", "data.synthetic_test=70"])
    raw = make_synthetic(300, 70, seed=0)
    assert estimate_bytes(config)["images"] == raw.X_train.nbytes + raw.X_test.nbytes + raw.y_train.nbytes + \
        raw.y_test.nbytes
    assert estimate_bytes(config)["generation"] == 2 * raw.X_train.size * 4  # two float32 temporaries


def test_the_confusion_matrix_of_60000_classes_is_counted():
    """The issue's case: 60,000 classes of 2-D points; the 27 GB confusion matrix alone does not fit 16 GiB."""
    config = load_config(SPIRAL, ["data.classes=60000"])
    with pytest.raises(ConfigError, match=r"the largest part is the test confusion matrix \(classes x classes\) "
                                          r"and its copy in summary.json, .* lower data.classes"):
        check_fits(config, available=16 * GiB)
    check_fits(load_config(SPIRAL, ["data.classes=600"]), available=16 * GiB)  # 600 classes fit


def test_two_billion_points_per_class_are_counted():
    config = load_config(SPIRAL, ["data.points_per_class=2000000000"])
    with pytest.raises(ConfigError, match=r"lower data.points_per_class, data.classes"):
        check_fits(config, available=64 * GiB)


# Sizes no machine holds (terabytes at least): the same on any machine the suite runs on.
ABSURD = {
    "60,000 classes of 20,000 points": (SPIRAL, ["data.classes=60000", "data.points_per_class=20000"]),
    "2e9 points per class": (SPIRAL, ["data.points_per_class=2000000000"]),
    "a million classes": (SPIRAL, ["data.classes=1000000"]),
    "2e9 points of 10 classes": (SPIRAL, ["data.points_per_class=200000000000", "data.classes=10"]),
    "circles of 1e12 points": (SPIRAL, ["data.source=circles", "data.points_per_class=1000000000000"]),
    "blobs of a billion classes": (SPIRAL, ["data.source=blobs", "data.classes=1000000000"]),
    "polar features of 1e11 points": (SPIRAL, ["features=[{type: polar}]", "data.points_per_class=100000000000"]),
    "synthetic train 1e10": (SMOKE, ["data.synthetic_train=10000000000"]),
    "synthetic test 1e10": (SMOKE, ["data.synthetic_test=10000000000"]),
    "hidden layer of 1e9": (SMOKE, ["model.hidden_dims=[1000000000]"]),
    "ten hidden layers of 1e6": (SMOKE, ["model.type=fc_net", "model.hidden_dims=[" + ",".join(["1000000"] * 10) + "]"]),
    "1e13 epochs": (SMOKE, ["train.num_epochs=10000000000000"]),
}


@pytest.mark.parametrize("command", ["train", "random-search"])
@pytest.mark.parametrize("config,overrides", ABSURD.values(), ids=ABSURD.keys())
def test_an_absurd_size_is_one_line_before_anything_is_written(tmp_path, command, config, overrides):
    if command == "random-search":
        if any("hidden_dims" in o for o in overrides):
            pytest.skip("random search draws a linear model")
        overrides = [*overrides, "model.type=linear"]
    args = [command, "--config", config, *[a for o in overrides for a in ("--set", o)], "--out", "r"]
    outcome = invoke(tmp_path, args)
    one_line(outcome, 2, r"^error: the run needs about [0-9.]+ [TPG]iB of memory but .* is available; the largest "
                         r"part is .*: lower ")
    untouched(outcome)  # no run folder, no lock, nothing in the data folder


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("fin") / "r"
    outcome = invoke(out.parent, ["train", "--config", SMOKE, "--set", "train.num_epochs=1", "--out", out, "--quiet"])
    assert outcome.code == 0, outcome.out
    return out


@pytest.mark.parametrize("allow", [False, True], ids=["same config", "--allow-changed-config"])
def test_resume_of_a_run_whose_config_asks_for_absurd_sizes(tmp_path, finished, allow):
    """A run folder whose config.yaml (and, without the flag, the config summary.json records) asks for 1e10
    synthetic images: --resume refuses in one line before loading anything."""
    shutil.copytree(finished, tmp_path / "r")
    raw = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    raw["data"]["synthetic_train"] = 10**10
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(raw))
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    if not allow:
        summary["config"]["data"]["synthetic_train"] = 10**10
    (tmp_path / "r" / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (tmp_path / "r" / "model.npz").unlink()
    args = ["train", "--resume", "r", "--quiet", *(["--allow-changed-config"] if allow else [])]
    outcome = invoke(tmp_path, args, own=(".r.lock",))
    one_line(outcome, 2, r"the run needs about .* lower data.synthetic_train / data.synthetic_test")
    untouched(outcome)


def test_the_scoring_estimate_counts_the_confusion_matrix_too():
    """What evaluate checks (training=False) before it builds any data."""
    config = load_config(SPIRAL, ["data.classes=1000000"])
    assert estimate_bytes(config, training=False)["confusion"] == 10**12 * 56
    assert np.isfinite(float(sum(estimate_bytes(config, training=False).values())))
