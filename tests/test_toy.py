"""2-D toy problems: the generators, the polar transform, and what the lecture says about them."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cs_nets.cli import main
from cs_nets.config import config_from_dict, load_config
from cs_nets.data.pipeline import prepare_dataset
from cs_nets.data.toy import make_toy
from cs_nets.errors import ArgumentError, ConfigError, DataError
from cs_nets.evaluation.evaluate import evaluate_checkpoint
from cs_nets.features import extract_features, polar_features

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def train_accuracy(run_dir):
    """Accuracy of a saved 2-D run on every one of its training points, through evaluate's path."""
    return evaluate_checkpoint(run_dir, split="train")["accuracy"]


# ------------------------------------------------------------------ generators


@pytest.mark.parametrize("source, classes", [("circles", 2), ("spiral", 3), ("blobs", 3)])
def test_generators_are_balanced_shuffled_and_reproducible(source, classes):
    raw = make_toy(source, points_per_class=50, seed=3)
    assert raw.X_train.shape == raw.X_test.shape == (50 * classes, 2)
    assert raw.X_train.dtype == np.float32 and raw.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(raw.y_train), [50] * classes)
    assert not np.all(np.diff(raw.y_train) >= 0)  # shuffled: a plain split is not one class
    again = make_toy(source, points_per_class=50, seed=3)
    np.testing.assert_array_equal(again.X_train, raw.X_train)
    assert not np.array_equal(raw.X_train, raw.X_test)  # the test split is another draw
    assert not np.array_equal(make_toy(source, points_per_class=50, seed=4).X_train, raw.X_train)


def test_noise_free_shapes():
    rings = make_toy("circles", 40, num_classes=4, noise=0.0)
    np.testing.assert_allclose(np.hypot(*rings.X_train.T), (rings.y_train + 1) / 4, rtol=1e-6)
    blobs = make_toy("blobs", 10, num_classes=4, noise=0.0)
    np.testing.assert_allclose(blobs.X_train, np.stack([np.cos(blobs.y_train * np.pi / 2),
                                                        np.sin(blobs.y_train * np.pi / 2)], 1), atol=1e-6)
    spiral = make_toy("spiral", 30, noise=0.0)
    radius = np.hypot(*spiral.X_train.T)
    for k in range(3):  # each arm runs from the centre out to radius 1
        assert radius[spiral.y_train == k].min() == 0 and radius[spiral.y_train == k].max() == pytest.approx(1)


def test_generator_rejects_bad_arguments():
    with pytest.raises(ArgumentError, match="expected one of circles, spiral, blobs"):
        make_toy("moons")
    with pytest.raises(ArgumentError, match="num_classes >= 2"):
        make_toy("spiral", num_classes=1)


# ------------------------------------------------------------------ polar features


def test_polar_features_of_known_points():
    X = np.array([[1, 0], [0, 2], [-3, 0], [0, -1], [1, 1]], dtype=np.float32)
    np.testing.assert_allclose(polar_features(X), [[1, 0], [2, np.pi / 2], [3, np.pi], [1, -np.pi / 2],
                                                   [np.sqrt(2), np.pi / 4]], rtol=1e-6)
    np.testing.assert_array_equal(extract_features(X, ["polar"]), polar_features(X))
    with pytest.raises(DataError, match=r"expected \(N, 2\) float points"):
        polar_features(np.zeros((3, 3), np.float32))


def test_config_keeps_point_and_image_features_apart():
    with pytest.raises(ConfigError, match="data.source spiral gives 2-D points; its features can only be polar"):
        config_from_dict({"data": {"source": "spiral"}, "features": ["hog"]})
    with pytest.raises(ConfigError, match="data.source cifar10 gives images; its features can only be "
                                          "raw, hog, color_hist, bow"):
        config_from_dict({"features": ["polar"]})
    with pytest.raises(ConfigError, match="cannot be combined with image features"):
        config_from_dict({"features": ["polar", "hog"]})
    with pytest.raises(ConfigError, match="train.hflip flips images; data.source circles gives 2-D points"):
        config_from_dict({"data": {"source": "circles"}, "train": {"hflip": True}})
    with pytest.raises(ConfigError, match=r"data.classes: expected a value >= 2, got 1"):
        config_from_dict({"data": {"source": "blobs", "classes": 1}})


def test_points_flow_through_the_pipeline_with_two_inputs():
    config = config_from_dict({"data": {"source": "blobs", "points_per_class": 40, "num_val": 20,
                                        "normalize": "mean_std"}})
    data = prepare_dataset(config, progress=False)
    assert data.X_train.shape == (100, 2) and data.X_val.shape == (20, 2) and data.test_rows.shape == (120, 2)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, rtol=1e-5)


# ------------------------------------------------------------------ the lecture's claims


@pytest.mark.slow
def test_rings_need_the_polar_transform(tmp_path):
    for name in ("toy_circles", "toy_circles_polar"):
        result = run("train", "--config", CONFIGS / f"{name}.yaml", "--out", tmp_path / name, "--quiet")
        assert result.exit_code == 0, result.output
    assert train_accuracy(tmp_path / "toy_circles") <= 0.75  # no line separates two rings
    assert train_accuracy(tmp_path / "toy_circles_polar") >= 0.95  # a threshold on r does
    assert load_config(CONFIGS / "toy_circles_polar.yaml").features == [{"type": "polar", "weight": 1.0}]


@pytest.mark.slow
def test_more_hidden_units_fit_the_spiral(tmp_path):
    accuracy = {}
    for hidden in (3, 20):
        out = tmp_path / f"h{hidden}"
        result = run("train", "--config", CONFIGS / "toy_spiral.yaml", "--set", f"model.hidden_dim={hidden}",
                     "--out", out, "--quiet")
        assert result.exit_code == 0, result.output
        assert json.loads((out / "summary.json").read_text())["model"] == "two_layer"
        accuracy[hidden] = train_accuracy(out)
    assert accuracy[20] >= 0.95
    assert accuracy[3] <= accuracy[20] - 0.05


def test_plot_of_a_2d_run_draws_its_decision_regions(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert run("train", "--config", CONFIGS / "toy_circles_polar.yaml", "--out", out, "--quiet",
               "--set", "train.num_epochs=2").exit_code == 0
    result = run("plot", out)
    assert result.exit_code == 0, result.output
    assert (out / "regions.png").is_file() and "regions.png" in result.output
    assert not (out / "templates.png").exists()
