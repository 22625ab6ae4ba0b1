"""data.source: folder: ImageFolder layouts, the stratified split, the decoded-image cache, and whole runs."""

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cs_nets.data.folder as folder_mod
from cs_nets.cli import main
from cs_nets.config import load_config
from cs_nets.data.folder import cache_dir, list_folder, load_folder, stratified_test_mask
from cs_nets.data.images import from_cifar_rows, load_image
from cs_nets.data.synthetic import make_synthetic
from cs_nets.errors import ConfigError, DataError
from cs_nets.runs.checkpoint import load_checkpoint

Image = pytest.importorskip("PIL.Image")

NAMES = ["cat", "dog", "emu"]
ROOT = Path(__file__).resolve().parents[1]


def write_folder(root: Path, per_class=30, split_dirs=False, size=32, seed=0):
    """A 3-class ImageFolder of synthetic PNGs; returns {relative path: (S, S, 3) pixels}."""
    raw = make_synthetic(num_train=per_class * 3 * 2, num_test=10, seed=seed, num_classes=3)
    images = from_cifar_rows(raw.X_train)
    written, counts = {}, {k: 0 for k in range(3)}
    for image, label in zip(images, raw.y_train):
        k = int(label)
        if counts[k] == per_class:
            continue
        i = counts[k]
        counts[k] += 1
        prefix = ("test/" if i % 5 == 0 else "train/") if split_dirs else ""
        rel = f"{prefix}{NAMES[k]}/{i:03d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if size != 32:
            image = np.asarray(Image.fromarray(image).resize((size, size)))
        Image.fromarray(image).save(root / rel)
        written[rel] = image
    return written


def test_class_names_are_the_sorted_folder_names_and_labels_follow(tmp_path):
    written = write_folder(tmp_path, per_class=6, split_dirs=True)
    (tmp_path / "train" / ".hidden").mkdir()
    listing = list_folder(tmp_path, None)
    assert listing.class_names == NAMES
    assert listing.files == sorted(f for f in written if f.startswith("train/")) + sorted(
        f for f in written if f.startswith("test/"))
    assert [NAMES[k] for k in listing.labels] == [f.split("/")[1] for f in listing.files]
    assert listing.is_test.tolist() == [f.startswith("test/") for f in listing.files]


def test_the_stratified_split_holds_out_the_fraction_of_each_class_with_a_fixed_seed():
    labels = np.repeat([0, 1, 2], [10, 21, 2])
    mask = stratified_test_mask(labels, 0.2, seed=0)
    assert [int(mask[labels == k].sum()) for k in range(3)] == [2, 4, 1]  # round(2.0), round(4.2), at least 1
    assert np.array_equal(mask, stratified_test_mask(labels, 0.2, seed=0))
    assert not np.array_equal(mask, stratified_test_mask(labels, 0.2, seed=1))
    assert stratified_test_mask(np.array([0, 1, 1]), 0.5, 0)[0] == np.False_  # a class of one stays in training


def test_a_folder_loads_exactly_its_pixels_and_is_cached(tmp_path, monkeypatch):
    written = write_folder(tmp_path, per_class=10)
    raw = load_folder(tmp_path, 32, test_fraction=0.2, progress=False)
    listing = list_folder(tmp_path, 0.2)
    expected = np.stack([written[f] for f in listing.files])
    rows = np.empty((len(listing.files), 3072), np.uint8)
    order = folder_mod.training_order(listing)
    rows[order], rows[listing.is_test] = raw.X_train, raw.X_test
    assert np.array_equal(from_cifar_rows(rows), expected)
    assert np.array_equal(raw.y_train, listing.labels[order])
    assert sorted(order) == np.flatnonzero(~listing.is_test).tolist()
    assert len(set(raw.y_train[-6:])) > 1  # the last training images (the validation split) mix the classes
    assert raw.class_names == NAMES and raw.image_size == 32
    assert len(raw.y_test) == 6 and np.bincount(raw.y_test).tolist() == [2, 2, 2]
    caches = list(cache_dir(tmp_path).glob("images-32-*.npy"))
    assert len(caches) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although nothing changed")

    monkeypatch.setattr(folder_mod, "decode_files", no_decoding)
    again = load_folder(tmp_path, 32, test_fraction=0.2, progress=False)
    assert np.array_equal(again.X_train, raw.X_train) and np.array_equal(again.X_test, raw.X_test)
    monkeypatch.undo()

    changed = tmp_path / listing.files[0]
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(changed)  # new content, size or mtime: a new key
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = load_folder(tmp_path, 32, test_fraction=0.2, progress=False)
    if listing.is_test[0]:
        assert np.all(third.X_test[0] == 7)
    else:
        assert np.all(third.X_train[np.flatnonzero(order == 0)[0]] == 7)
    new_caches = list(cache_dir(tmp_path).glob("images-32-*.npy"))
    assert len(new_caches) == 1 and new_caches != caches  # the stale cache was removed


def test_a_corrupt_cache_is_rebuilt(tmp_path):
    write_folder(tmp_path, per_class=4, split_dirs=True)
    first = load_folder(tmp_path, 16, progress=False)
    (cache,) = cache_dir(tmp_path).glob("images-16-*.npy")
    cache.write_bytes(b"garbage")
    second = load_folder(tmp_path, 16, progress=False)
    assert np.array_equal(first.X_train, second.X_train) and first.X_train.shape[1] == 3 * 16 * 16
    assert np.load(cache).shape == (12, 768)


def test_other_sizes_go_through_predicts_conversion(tmp_path):
    written = write_folder(tmp_path, per_class=4, split_dirs=True, size=48)
    raw = load_folder(tmp_path, 20, progress=False)
    listing = list_folder(tmp_path, None)
    train_files = [listing.files[i] for i in folder_mod.training_order(listing)]
    expected = np.stack([load_image(tmp_path / f, 20) for f in train_files])
    assert np.array_equal(from_cifar_rows(raw.X_train, 20), expected)
    assert written  # the files were 48x48: resized, not just read


def test_a_second_process_waits_for_the_first_ones_cache(tmp_path, monkeypatch):
    write_folder(tmp_path, per_class=4, split_dirs=True)
    listing = list_folder(tmp_path, None)
    key = folder_mod.listing_key(tmp_path.absolute(), listing.files, 32)
    cache = cache_dir(tmp_path) / f"images-32-{key}.npy"
    cache.parent.mkdir()
    from filelock import FileLock

    holder = FileLock(str(cache.with_suffix(".lock")))
    holder.acquire()
    messages, results, decoded = [], [], []
    real_decode = folder_mod.decode_files
    monkeypatch.setattr(folder_mod, "decode_files", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    worker = threading.Thread(target=lambda: results.append(load_folder(tmp_path, 32, progress=False,
                                                                        log=messages.append)))
    worker.start()
    for _ in range(600):  # until it says it waits (at most 30 s)
        if any("waiting for another process" in m for m in messages):
            break
        time.sleep(0.05)
    assert any("waiting for another process" in m for m in messages)
    rows = real_decode(tmp_path, listing.files, 32)
    np.save(cache, rows)  # what the other process leaves behind
    holder.release()
    worker.join(60)
    assert decoded == [] and np.array_equal(results[0].X_train, rows[folder_mod.training_order(listing)])


@pytest.mark.parametrize("layout, error", [
    ("one_class", "at least 2"),
    ("no_images", "holds no image files"),
    ("only_train", "has train/ but not test/"),
    ("bad_image", "cannot be read"),
    ("test_has_new_class", "'zebra' that"),
])
def test_a_broken_folder_is_one_data_error(tmp_path, layout, error):
    if layout == "one_class":
        (tmp_path / "cat").mkdir()
    elif layout == "no_images":
        (tmp_path / "cat").mkdir()
        (tmp_path / "dog").mkdir()
        (tmp_path / "dog" / "notes.txt").write_text("x")
    elif layout == "only_train":
        write_folder(tmp_path / "train", per_class=2)
    elif layout == "bad_image":
        write_folder(tmp_path, per_class=3)
        (tmp_path / "dog" / "zz.png").write_text("not a png")
    else:
        write_folder(tmp_path, per_class=5, split_dirs=True)
        (tmp_path / "test" / "zebra").mkdir()
    with pytest.raises(DataError) as err:
        load_folder(tmp_path, 32, test_fraction=None if layout in ("only_train", "test_has_new_class") else 0.2,
                    progress=False)
    assert error in str(err.value) and "\n" not in str(err.value)


def test_test_fraction_is_required_without_splits_and_refused_with_them(tmp_path):
    write_folder(tmp_path / "flat", per_class=3)
    with pytest.raises(ConfigError, match="set data.test_fraction"):
        list_folder(tmp_path / "flat", None)
    write_folder(tmp_path / "split", per_class=5, split_dirs=True)
    with pytest.raises(ConfigError, match="remove data.test_fraction"):
        list_folder(tmp_path / "split", 0.2)


@pytest.mark.parametrize("overrides, message", [
    (["data.source=folder"], "needs data.path"),
    (["data.path=/x"], "data.path applies to data.source folder only"),
    (["data.image_size=16"], "data.image_size applies to data.source folder only"),
    (["data.source=folder", "data.path=/x", "features=[{type: hog, cell: 5}]"], "hog cell 5 does not divide"),
    (["data.source=folder", "data.path=/x", "data.image_size=20", "features=[{type: hog, cell: 8}]"],
     r"hog cell 8 does not divide the 20x20 images \(data.image_size\); choose a divisor of 20$"),
    (["data.source=folder", "data.path=/x", "data.image_size=8", "features=[{type: bow, patch: 10}]"],
     r"bow patch 10 is larger than the 8x8 images \(data.image_size\); choose at most 8$"),
    (["data.source=folder", "data.path=/x", "data.image_size=8", "features=[{type: bow, patch: 8}]"],
     r"patch 8 with stride 1 leaves 1 patch position\(s\) per side of a 8x8 image; quadrants pooling needs more"),
    (["data.source=folder", "data.path=/x", "data.test_fraction=1.0"], "<= 0.9"),
])
def test_config_errors_of_the_folder_source(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, overrides)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides", [
    ["data.image_size=48", "features=[{type: hog, cell: 8}, color_hist, {type: bow, patch: 6, words: 8}]"],
    ["data.image_size=24", "features=[{type: hog, cell: 6}]"],
    ["data.image_size=48", "train.hflip=true"],
    ["data.image_size=9", "features=[{type: bow, patch: 8, pooling: image}]"],
])
def test_features_and_hflip_are_accepted_at_any_image_size(overrides):
    config = load_config(None, ["data.source=folder", "data.path=/x", *overrides])
    assert config.data.image_size == int(overrides[0].split("=")[1])


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_predict_gives_the_test_split(out, data, model, inputs, confusion):
    """`csnets predict` on the test files of `data` (test_fraction 0.25, read at 24x24) predicts what the
    checkpoint's model predicts for the decoded test split, and those predictions give `confusion`."""
    listing = list_folder(data, 0.25)
    test_files = [data / f for f, t in zip(listing.files, listing.is_test) if t]
    result = run("predict", "--checkpoint", out, *test_files, "--json")
    assert result.exit_code == 0, result.stderr
    predicted = np.array([p["index"] for p in json.loads(result.stdout)["predictions"]])
    raw = load_folder(data, 24, 0.25, progress=False)
    assert np.array_equal(predicted, inputs.predict(model, inputs.extract(raw.X_test, None, progress=False)))
    found = np.zeros((3, 3), int)
    np.add.at(found, (raw.y_test, predicted), 1)
    assert found.tolist() == confusion


@pytest.mark.slow
def test_train_evaluate_and_predict_on_a_folder_dataset(tmp_path):
    data = tmp_path / "pets"
    write_folder(data, per_class=40, size=40)  # 40x40 files, trained at 24x24
    config = tmp_path / "pets.yaml"
    config.write_text(f"data: {{source: folder, path: {data}, image_size: 24, test_fraction: 0.25, num_val: 18}}\n"
                      "model: {type: linear, loss: softmax}\noptim: {learning_rate: 1.0e-3}\n"
                      "train: {num_epochs: 3, batch_size: 20}\n")
    out = tmp_path / "run"
    result = run("train", "--config", config, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    model, inputs, meta = load_checkpoint(out)
    assert meta["class_names"] == NAMES and meta["image_size"] == 24 and model.input_dim == 3 * 24 * 24
    assert summary["test_accuracy"] > 0.5  # 3 learnable classes
    assert not [p for p in data.iterdir() if p.name not in NAMES + [".cs_nets"]]  # caches stay in .cs_nets

    result = run("evaluate", "--checkpoint", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == summary["test_accuracy"] and report["class_names"] == NAMES

    assert_predict_gives_the_test_split(out, data, model, inputs, report["confusion"])


@pytest.mark.slow
@pytest.mark.parametrize("command, extra", [
    ("random-search", ["--set", "search.attempts=5"]),
    ("random-search", ["--set", "search.attempts=5", "--set", "data.image_size=24",
                       "--set", "features=[{type: hog, cell: 6}, {type: color_hist}]"]),
    ("train", ["--set", "features=[{type: hog, cell: 8}, {type: color_hist}]", "--set", "train.num_epochs=2"]),
    ("train", ["--set", "model.type=fc_net", "--set", "model.hidden_dims=[16, 16]", "--set", "train.num_epochs=2"]),
])
def test_random_search_features_and_other_models_run_on_a_folder(tmp_path, command, extra):
    data = tmp_path / "pets"
    write_folder(data, per_class=20, split_dirs=True)
    out = tmp_path / "run"
    result = run(command, "--config", ROOT / "configs" / "smoke.yaml", "--set", "data.source=folder", "--set", f"data.path={data}", "--set", "data.num_val=6",
                 *extra, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert np.array(summary["test_confusion"]).sum() == 12  # 4 of every 20 files are in test/
    assert summary["class_names"] == NAMES
    result = run("evaluate", "--checkpoint", out, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["accuracy"] == summary["test_accuracy"]
    result = run("predict", "--checkpoint", out, data / "test", "--recursive", "--json")  # features included
    assert result.exit_code == 0, result.stderr
    confusion = np.zeros((3, 3), int)
    for p in json.loads(result.stdout)["predictions"]:
        confusion[NAMES.index(Path(p["file"]).parent.name), p["index"]] += 1
    assert confusion.tolist() == summary["test_confusion"]


def test_an_unknown_key_with_a_newline_is_named_on_one_line(tmp_path):
    """Found by tests/test_fuzz.py: a YAML key holding a newline made a two-line error."""
    config = tmp_path / "c.yaml"
    config.write_text('data:\n  "pa\\nth": 1\n')
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "\n" not in str(err.value) and "unknown key 'data.pa\\nth'" in str(err.value)


SIZED_FEATURES = ("[{type: hog, cell: 6}, {type: color_hist}, "
                  "{type: bow, words: 8, patch: 5, stride: 2, samples: 2000, iterations: 3}]")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    ["model.type=two_layer", "model.hidden_dims=[20]", f"features={SIZED_FEATURES}"],
    ["model.type=linear", "train.hflip=true"],  # raw pixels: flipped in training, drawn as 24x24 templates
])
def test_features_hflip_evaluate_predict_and_templates_at_image_size_24(tmp_path, extra):
    from cs_nets.features import feature_dim

    data = tmp_path / "pets"
    write_folder(data, per_class=24, size=40)  # 40x40 files, read at 24x24
    sets = ["data.source=folder", f"data.path={data}", "data.image_size=24", "data.test_fraction=0.25",
            "data.num_val=9", "optim.learning_rate=1e-3", "train.num_epochs=3", "train.batch_size=20", *extra]
    out = tmp_path / "run"
    result = run("train", "--config", ROOT / "configs" / "smoke.yaml", *[a for s in sets for a in ("--set", s)],
                 "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    model, inputs, meta = load_checkpoint(out)
    assert meta["image_size"] == inputs.image_size == 24
    width = feature_dim(inputs.features, (24, 24, 3)) if inputs.features else 3 * 24 * 24
    assert model.input_dim == width == (16 * 9 + 10 + 4 * 8 if inputs.features else 1728)

    result = run("evaluate", "--checkpoint", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == summary["test_accuracy"]

    # predict decodes the test files at the checkpoint's size and rebuilds its features there
    assert_predict_gives_the_test_split(out, data, model, inputs, summary["test_confusion"])

    # A checkpoint whose recorded size does not give its inputs is refused before anything is read at it.
    arrays = dict(np.load(out / "model.npz", allow_pickle=False))
    meta["image_size"] = 32
    arrays["meta"] = np.array(json.dumps(meta))
    (tmp_path / "other").mkdir()
    np.savez(tmp_path / "other" / "model.npz", **arrays)
    with pytest.raises(DataError, match=rf"(its features \(hog, color_hist, bow\) do not give its {width} inputs "
                                        rf"for 32x32 images \(meta image_size\)|meta image_size is 32, expected the "
                                        rf"side of the images its {width} raw-pixel inputs hold)$"):
        load_checkpoint(tmp_path / "other" / "model.npz")

    result = run("plot", out)
    assert result.exit_code == 0, result.output
    templates = out / "templates.png"
    assert templates.is_file() != bool(inputs.features)  # feature weights have no picture
    if templates.is_file():
        with Image.open(templates) as picture:
            assert picture.size == (1000, 180)  # one labeled row of 3 class templates


def test_the_memory_estimate_counts_features_at_the_image_size():
    from cs_nets.features import feature_dim
    from cs_nets.memory import estimate_bytes

    features = [{"type": "hog", "cell": 6}, "color_hist", {"type": "bow", "words": 8, "patch": 5}]
    config = load_config(None, ["data.source=folder", "data.path=/x", "data.image_size=24", "data.num_val=10",
                                f"features={features}"])
    width = feature_dim(features, (24, 24, 3))
    assert width == 16 * 9 + 10 + 4 * 8 != feature_dim(features)
    parts = estimate_bytes(config, folder_sizes=(100, 20))
    assert parts["features"] == 120 * width * 4
    # float32 rows: 90 training, 10 validation and the copy of the 90 training rows scored each epoch
    assert parts["inputs"] == (90 + 10 + 90) * width * 4


@pytest.mark.slow
def test_a_local_sweep_runs_features_at_image_size_24(tmp_path):
    data = tmp_path / "pets"
    write_folder(data, per_class=20, split_dirs=True)
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{source: folder, path: {data}, image_size: 24, num_val: 6}}\n"
                      f"features: {SIZED_FEATURES}\nmodel: {{type: linear}}\ntrain: {{num_epochs: 2, batch_size: 20}}\n")
    out = tmp_path / "sweep"
    result = run("sweep", "--config", config, "--grid", "optim.learning_rate=1e-3,1e-2", "--backend", "local",
                 "--out", out)
    assert result.exit_code == 0, result.output
    for trial in ("trial-000", "trial-001"):
        summary = json.loads((out / trial / "summary.json").read_text())
        assert summary["status"] == "completed" and load_checkpoint(out / trial)[2]["image_size"] == 24
        result = run("evaluate", "--checkpoint", out / trial, "--json")
        assert result.exit_code == 0 and json.loads(result.stdout)["accuracy"] == summary["test_accuracy"]
