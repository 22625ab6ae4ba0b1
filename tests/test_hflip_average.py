"""data.hflip_average and data.shift_average: every scored image counts as the mean of its scores
over its views (its mirror; the image moved a few pixels, and their mirrors)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mirrors import mirrored_by_loop, viewed_by_loop

from cs_nets.cli import main
from cs_nets.config import config_from_dict, load_config
from cs_nets.data.cifar10 import load_cifar10
from cs_nets.data.pipeline import InputPipeline, build_dataset, load_images, split_of
from cs_nets.errors import ArgumentError, ConfigError
from cs_nets.evaluation.predict import TrainedModel
from cs_nets.features import extract_views
from cs_nets.features.views import View, averaged_views
from cs_nets.memory import estimate_bytes

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


FEATURES = ["features=[hog, {type: color_hist, bins: 8}]", "optim.learning_rate=0.05"]
# the mirrors' codes come from the images' own pass
SYMMETRIC_BOW = ["features=[hog, {type: bow, words: 8, samples: 2000, iterations: 2, symmetric: true}]",
                 "optim.learning_rate=0.05"]
MIRRORS, MOVES = ["data.hflip_average=true"], ["data.shift_average=2"]
RUNS = {"pixels": MIRRORS, "features": MIRRORS + FEATURES, "symmetric bow": MIRRORS + SYMMETRIC_BOW,
        "moved pixels": MOVES, "moved features": MIRRORS + MOVES + FEATURES,
        "moved symmetric bow": MIRRORS + MOVES + SYMMETRIC_BOW}
SLOW_RUNS = {"moved pixels", "moved symmetric bow"}  # the inner loop keeps one run with moved views


@pytest.fixture(scope="module", params=[pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_RUNS else [])
                                        for name in RUNS])
def averaged_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / request.param.replace(" ", "_")
    sets = [arg for key in RUNS[request.param] for arg in ("--set", key)]
    result = run("train", "--config", SMOKE, *sets, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def split_of_run(run_dir):
    """The run's (X_val, y_val, X_test, y_test) image rows, rebuilt as evaluate rebuilds them."""
    trained = TrainedModel.load(run_dir)
    config = config_from_dict(trained.meta["config"])
    raw, _ = load_images(config.data, config.seed, progress=False)
    parts = split_of(raw, config.data, config.seed)
    return trained, parts


def view_inputs(inputs, rows, view):
    """The model inputs of `view` of the image rows, each view made on its own: the images moved and
    mirrored pixel by pixel, except a moved view's bag of words, which pools the patches the moved
    image holds whole (held to a patch-by-patch loop in tests/test_views.py)."""
    if view.shifted and any(t["type"] == "bow" for t in inputs.features):
        codebooks = [inputs.codebooks.get(i) for i in range(len(inputs.features))]
        return inputs.transform(extract_views(rows, inputs.features, [view], codebooks=codebooks,
                                              progress=False)[0])
    return inputs.transform(inputs.extract(viewed_by_loop(rows, view), None, progress=False))


def reference_accuracy(trained, rows, y):
    """Accuracy with each image's scores averaged over its views, image by image."""
    views = [view_inputs(trained.inputs, rows, view) for view in trained.inputs.views]
    right = 0
    for i in range(len(rows)):
        scores = sum(trained.model.loss(X[i:i + 1])[0] for X in views) / len(views)
        right += int(np.argmax(scores) == y[i])
    return right / len(rows)


def test_the_summary_scores_each_image_over_its_views(averaged_run):
    summary = json.loads((averaged_run / "summary.json").read_text())
    trained, parts = split_of_run(averaged_run)
    config = config_from_dict(trained.meta["config"])
    assert trained.inputs.views == averaged_views(config.data.shift_average, config.data.hflip_average)
    assert summary["test_accuracy"] == pytest.approx(reference_accuracy(trained, parts.X_test, parts.y_test),
                                                     abs=1e-12)
    assert summary["val_accuracy"] == pytest.approx(reference_accuracy(trained, parts.X_val, parts.y_val),
                                                    abs=1e-12)
    assert summary["test_accuracy"] > 0.2  # it learned (chance is 0.1): the comparison is not between guesses


@pytest.mark.parametrize("split", ["test", "val"])
def test_evaluate_reproduces_the_averaged_accuracy(averaged_run, split):
    summary = json.loads((averaged_run / "summary.json").read_text())
    result = run("evaluate", "--checkpoint", averaged_run, "--split", split, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == summary[f"{split}_accuracy"]


def test_predict_averages_the_views_and_an_image_and_its_mirror_score_alike(averaged_run):
    trained, parts = split_of_run(averaged_run)
    inputs, rows = trained.inputs, parts.X_test[:40]
    averaged = trained.predict_cifar_rows(rows)
    # With a symmetric bow, a mirror's codes come from the image's code map: a float32 rounding apart
    # (about 1e-5 in codes of about 0.05), which standardizing makes about 1e-4 of a score. Moved
    # views are summed in another order for the mirror: a float32 rounding of the scores.
    moved = "moved" in averaged_run.name
    tolerance = 1e-3 if averaged_run.name.endswith("symmetric_bow") else 1e-5 if moved else 0
    if inputs.hflip_average:  # a mirror's views are the image's views mirrored
        of_mirrors = trained.predict_cifar_rows(mirrored_by_loop(rows))
        np.testing.assert_allclose(averaged.scores, of_mirrors.scores, rtol=tolerance, atol=tolerance)
    each = [trained.model.loss(view_inputs(inputs, rows, view)) for view in inputs.views]
    np.testing.assert_allclose(averaged.scores, np.mean(each, axis=0), rtol=max(tolerance, 1e-5),
                               atol=max(tolerance, 1e-5))
    assert not np.allclose(each[0], each[1], atol=1e-3)  # another view is another input


def test_the_mirrors_of_validation_and_test_are_extracted_and_normalized(small_cifar_archives, tmp_path):
    from cs_nets.data.cifar10 import OFFICIAL
    from cs_nets.data.extract import safe_extract

    folder, _, _ = small_cifar_archives
    safe_extract(folder / OFFICIAL["python"].filename, tmp_path, OFFICIAL["python"].folder)
    lines = []
    sets = [f"data.dir={tmp_path}", "data.num_val=50", "features=[hog]", "data.hflip_average=true"]
    raw = load_cifar10(tmp_path, "python")
    data = build_dataset(load_config(None, sets), raw, tmp_path, progress=False, log=lines.append)
    parts = split_of(load_cifar10(tmp_path, "python"), data_config := load_config(None, sets).data, 0)
    assert data_config.hflip_average
    inputs = data.inputs
    [val_mirrored] = data.X_val_views
    np.testing.assert_allclose(val_mirrored,
                               inputs.transform(inputs.extract(mirrored_by_loop(parts.X_val), None, progress=False)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(data.test_rows_mirrored,
                               inputs.extract(mirrored_by_loop(parts.X_test), None, progress=False), rtol=1e-6)
    assert val_mirrored.shape == data.X_val.shape and not np.allclose(val_mirrored, data.X_val)
    named = [line.split(" in ")[0] for line in lines if line.startswith("features:")]
    assert "features: 50 val images and their mirrors (144 values each)" in named
    assert "features: 101 test images and their mirrors (144 values each)" in named
    assert set(data.arrays()) >= {"X_val_views/0", "test_rows_mirrored"}  # sweeps count and share them


def test_the_moved_views_of_validation_are_held_and_the_test_images_kept(small_cifar_archives, tmp_path):
    from cs_nets.data.cifar10 import OFFICIAL
    from cs_nets.data.extract import safe_extract

    folder, _, _ = small_cifar_archives
    safe_extract(folder / OFFICIAL["python"].filename, tmp_path, OFFICIAL["python"].folder)
    lines = []
    sets = [f"data.dir={tmp_path}", "data.num_val=50", "features=[hog]", "data.shift_average=3"]
    data = build_dataset(load_config(None, sets), load_cifar10(tmp_path, "python"), tmp_path, progress=False,
                         log=lines.append)
    parts = split_of(load_cifar10(tmp_path, "python"), load_config(None, sets).data, 0)
    inputs = data.inputs
    assert inputs.views == [View(0, 0), View(0, 3), View(0, -3), View(3, 0), View(-3, 0)]
    assert len(data.X_val_views) == 4 and data.test_rows_mirrored is None
    for view, X in zip(inputs.views[1:], data.X_val_views):
        np.testing.assert_allclose(X, view_inputs(inputs, parts.X_val, view), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(data.test_images, parts.X_test)  # the test views are made as they are scored
    assert any(line.startswith("features: 50 val images moved 3 pixels, 4 views in ") for line in lines)
    with pytest.raises(ArgumentError, match="the moved views .* need the 101 images"):
        inputs.scores(None, data.test_rows)


def test_without_it_nothing_is_mirrored(small_cifar_archives, tmp_path):
    from cs_nets.data.cifar10 import OFFICIAL
    from cs_nets.data.extract import safe_extract

    folder, _, _ = small_cifar_archives
    safe_extract(folder / OFFICIAL["python"].filename, tmp_path, OFFICIAL["python"].folder)
    data = build_dataset(load_config(None, [f"data.dir={tmp_path}", "data.num_val=50"]),
                         load_cifar10(tmp_path, "python"), tmp_path, progress=False)
    assert data.X_val_views == [] and data.test_rows_mirrored is None and data.test_images is None
    assert "hflip_average" not in data.inputs.config()  # checkpoints stay as they were


def test_it_is_refused_for_points_and_counted_in_memory():
    with pytest.raises(ConfigError, match="data.hflip_average mirrors images"):
        load_config(None, ["data.source=spiral", "data.hflip_average=true"])
    plain = estimate_bytes(load_config(None, ["features=[hog]"]))
    averaged = estimate_bytes(load_config(None, ["features=[hog]", "data.hflip_average=true"]))
    # 10,000 test + 1,000 validation images more, as pixels and as 144 features
    assert averaged["features"] - plain["features"] == 11_000 * 144 * 4
    assert averaged["images"] - plain["images"] == 11_000 * 3072
    # the 1,000 validation images' moved views are held as float32 inputs: 4 moves, each with its mirror
    moved = estimate_bytes(load_config(None, ["features=[hog]", "data.hflip_average=true", "data.shift_average=2"]))
    assert moved["inputs"] - averaged["inputs"] == 1_000 * 8 * 144 * 4
    assert {k: v for k, v in moved.items() if k != "inputs"} == {k: v for k, v in averaged.items() if k != "inputs"}


def test_a_checkpoint_config_with_a_bad_value_is_refused():
    inputs = InputPipeline.for_config(load_config(None, ["data.hflip_average=true"]))
    inputs.fit(np.zeros((4, 3072), np.float32))
    config, arrays = inputs.config(), inputs.state()
    assert config["hflip_average"] is True
    assert InputPipeline.from_state(config, arrays).hflip_average
    with pytest.raises(ArgumentError, match="hflip_average: expected true or false"):
        InputPipeline.from_state({**config, "hflip_average": "yes"}, arrays)
    assert "shift_average" not in config  # checkpoints without the key load as before
    assert InputPipeline.from_state({**config, "shift_average": 3}, arrays).views[2] == View(0, 3)
    for bad in (True, 9, -1, 2.0, "2"):
        with pytest.raises(ArgumentError, match="shift_average: expected a whole number of pixels from 0 to 8"):
            InputPipeline.from_state({**config, "shift_average": bad}, arrays)


def test_each_epochs_validation_accuracy_is_the_averaged_one(averaged_run):
    # The best epoch's parameters are the saved ones: its logged val_accuracy is the summary's.
    summary = json.loads((averaged_run / "summary.json").read_text())
    epochs = [json.loads(line) for line in (averaged_run / "metrics.jsonl").read_text().splitlines()]
    best = epochs[summary["best_epoch"] - 1]
    assert best["val_accuracy"] == summary["val_accuracy"]


@pytest.mark.parametrize("sets, message", [
    (["data.source=spiral", "data.shift_average=2"], "moves images; data.source spiral gives 2-D points"),
    (["data.shift_average=9"], "<= 8"),
    (["data.shift_average=2", "features=[{type: bow, stride: 3}]"], r"not a multiple of features\[0\].stride \(3\)"),
    (["data.source=folder", "data.path=x", "data.image_size=8", "data.shift_average=4"], "half or more of the 8-pixel"),
])
def test_bad_shift_average_values_are_config_errors(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, sets)
