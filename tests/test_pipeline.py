"""From a data folder to model inputs: in place (what runs do) equals copying, and holds the images once."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from archive_writer import binary_batch_bytes, binary_meta_bytes

from cs_nets.config import load_config
from cs_nets.data.batches import LAYOUTS
from cs_nets.data.cifar10 import CLASS_NAMES, OFFICIAL, load_cifar10
from cs_nets.data.extract import safe_extract
from cs_nets.data.pipeline import build_dataset, prepare_dataset
from cs_nets.nn.models import build_model


@pytest.fixture
def python_dir(small_cifar_archives, tmp_path):
    """An extracted python layout of the small synthetic CIFAR (503 train, 101 test images)."""
    folder, _, _ = small_cifar_archives
    safe_extract(folder / OFFICIAL["python"].filename, tmp_path, OFFICIAL["python"].folder)
    return tmp_path


@pytest.mark.parametrize("sets", [
    [],  # unshuffled: views of the loaded array
    ["data.shuffle=true", "seed=3"],  # shuffled: training rows gathered to the front in place
    ["data.shuffle=true", "data.num_train=100", "data.num_val=30"],  # a small split: copies
    ["data.dtype=float64", "data.normalize=mean"],
    ["data.normalize=none"],
])
def test_runs_inputs_made_in_place_equal_the_copying_pipeline(python_dir, sets):
    config = load_config(None, [f"data.dir={python_dir}", "data.num_val=50", *sets])
    data = prepare_dataset(config, progress=False)  # reads floats, splits and normalizes in place
    raw = load_cifar10(python_dir, "python")  # uint8, as evaluate reads it
    reference = build_dataset(config, raw, python_dir, progress=False)  # new arrays, raw untouched
    np.testing.assert_array_equal(raw.X_train, load_cifar10(python_dir, "python").X_train)
    for name, array in reference.arrays().items():
        np.testing.assert_array_equal(data.arrays()[name], array, err_msg=name)
        assert data.arrays()[name].dtype == array.dtype, name
    assert data.X_train.dtype == np.dtype(config.data.dtype) and data.test_rows.dtype == np.uint8
    assert data.inputs.data_fingerprint == reference.inputs.data_fingerprint
    stats, reference_stats = data.inputs.state(), reference.inputs.state()
    assert stats.keys() == reference_stats.keys()
    for name, array in reference_stats.items():
        np.testing.assert_array_equal(stats[name], array, err_msg=name)
    if config.data.num_train:  # 130 of 503 rows: copied out, so the loaded array can be freed
        assert data.X_train.base is None and data.X_val.base is None
    elif not config.data.shuffle:
        assert data.X_val.base is data.X_train.base  # both splits live in the one loaded array


def test_test_rows_are_scored_in_chunks_like_the_whole_normalized_split(python_dir):
    config = load_config(None, [f"data.dir={python_dir}", "data.num_val=50"])
    data = prepare_dataset(config, progress=False)
    model = build_model("two_layer", 3072, 10, hidden_dim=7, seed=1)
    whole = model.predict(data.inputs.transform(data.test_rows))  # reference: one float copy of all rows
    for batch_size in (1, 7, 100, 101, 5000):
        np.testing.assert_array_equal(data.inputs.predict(model, data.test_rows, batch_size=batch_size), whole)
    assert len(np.unique(whole)) > 1  # a model that predicts one class would not tell orders apart


# VmHWM is the peak RSS of this address space (ru_maxrss would start from the forking parent's).
PEAK_SCRIPT = textwrap.dedent("""
    import json, sys
    from cs_nets.config import load_config
    from cs_nets.data.pipeline import prepare_dataset

    def kib(field):
        line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    config = load_config(None, [f"data.dir={sys.argv[1]}", "data.format=binary", "data.num_val=1000"])
    before = kib("VmHWM")
    data = prepare_dataset(config, progress=False)
    print(json.dumps({"grew": kib("VmHWM") - before, "train": data.X_train.nbytes + data.X_val.nbytes}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_preparing_raw_pixels_holds_the_training_images_once(tmp_path):
    """Peak memory of prepare_dataset, in a fresh process: the float training set and little else.

    Reading uint8 and then normalizing into a new float array would hold both at the
    end of the transform: float + uint8 = 1.25 x float32. In place, what comes on top
    of the float array is one batch file and a chunk of temporaries.
    """
    n, n_test = 40_000, 1_000
    rng = np.random.default_rng(0)
    folder = tmp_path / LAYOUTS["binary"].folder
    folder.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(n), 5), start=1):
        images = rng.integers(0, 256, (len(rows), 3072), dtype=np.uint8)
        (folder / f"data_batch_{k}.bin").write_bytes(binary_batch_bytes(images, rows % 10))
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    (folder / LAYOUTS["binary"].test).write_bytes(binary_batch_bytes(test, np.arange(n_test) % 10))
    (folder / LAYOUTS["binary"].meta).write_bytes(binary_meta_bytes(CLASS_NAMES))
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout)
    uint8_bytes = n * 3072
    assert measured["train"] == 4 * uint8_bytes  # float32 inputs of all 40,000 training images
    assert measured["grew"] < measured["train"] + 0.6 * uint8_bytes, measured


FREED_SCRIPT = textwrap.dedent("""
    import threading
    import numpy as np
    from cs_nets.memory import return_freed_memory

    def rss():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) * 1024

    def churn():  # what the normalizer's threads do: large temporaries, freed into the thread's arena
        big = np.ones(1 << 21)  # 16 MB, mmapped; freeing it raises glibc's mmap threshold to 16 MB
        del big
        pieces = [np.ones(1 << 19) for _ in range(12)]  # 12 x 4 MB, now from the thread's arena
        churn.last = pieces[-1]  # kept: it pins the top of the heap, so free() trims nothing
        del pieces

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = rss()
    return_freed_memory()
    print(before - rss())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or "glibc" not in " ".join(__import__("platform").libc_ver()),
                    reason="glibc's malloc_trim")
def test_memory_a_thread_freed_goes_back_to_the_os():
    out = subprocess.run([sys.executable, "-c", FREED_SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 32 * 2**20  # of the 44 MB the thread freed


def test_mirror_rows_equals_a_loop_over_pixels():
    from cs_nets.data.preprocess import mirror_rows

    rng = np.random.default_rng(0)
    for size in (32, 5):
        X = rng.integers(0, 256, size=(4, 3 * size * size), dtype=np.uint8)
        expected = np.empty_like(X)
        for n in range(len(X)):
            for c in range(3):
                for row in range(size):
                    for col in range(size):
                        expected[n, (c * size + row) * size + col] = X[n, (c * size + row) * size + size - 1 - col]
        np.testing.assert_array_equal(mirror_rows(X, size), expected)
    np.testing.assert_array_equal(mirror_rows(mirror_rows(X, 5), 5), X)


@pytest.mark.parametrize("features", [[], ["features=[hog, color_hist]"]])
def test_hflip_copies_add_the_mirrors_to_the_training_split_only(python_dir, features):
    from cs_nets.data.preprocess import mirror_rows

    sets = [f"data.dir={python_dir}", "data.num_val=50", *features]
    plain = build_dataset(load_config(None, sets), load_cifar10(python_dir, "python"), python_dir, progress=False)
    config = load_config(None, [*sets, "data.hflip_copies=true"])
    raw = load_cifar10(python_dir, "python")
    data = build_dataset(config, raw, python_dir, progress=False)
    n = len(plain.X_train)
    assert data.X_train.shape == (2 * n, plain.X_train.shape[1])
    np.testing.assert_array_equal(data.y_train, np.concatenate([plain.y_train, plain.y_train]))
    np.testing.assert_array_equal(data.test_rows, plain.test_rows)  # test and validation: no mirrors
    np.testing.assert_array_equal(data.y_val, plain.y_val)
    # Each half is the inputs of its images, normalized with statistics of both halves.
    raw_train = raw.X_train[:n]
    expected = np.concatenate([data.inputs.extract(raw_train, None, progress=False),
                               data.inputs.extract(mirror_rows(raw_train, 32), None, progress=False)])
    np.testing.assert_allclose(data.X_train, data.inputs.transform(expected), rtol=1e-6, atol=1e-6)
    assert not np.allclose(data.X_train[:n], data.X_train[n:])


def test_a_transform_weight_multiplies_its_standardized_values_and_keeps_the_cache(python_dir):
    from cs_nets.data.pipeline import InputPipeline

    sets = [f"data.dir={python_dir}", "data.num_val=50"]
    plain = build_dataset(load_config(None, [*sets, "features=[hog, color_hist]"]),
                          load_cifar10(python_dir, "python"), python_dir, progress=False)
    caches = sorted((python_dir / "features").glob("features-*.npy"))
    config = load_config(None, [*sets, "features=[hog, {type: color_hist, weight: 3}]"])
    weighted = build_dataset(config, load_cifar10(python_dir, "python"), python_dir, progress=False)
    assert sorted((python_dir / "features").glob("features-*.npy")) == caches  # same values: same cache files
    for got, base in [(weighted.X_train, plain.X_train), (weighted.X_val, plain.X_val),
                      (weighted.inputs.transform(weighted.test_rows), plain.inputs.transform(plain.test_rows))]:
        np.testing.assert_array_equal(got[:, :144], base[:, :144])  # hog: weight 1
        np.testing.assert_allclose(got[:, 144:], 3 * base[:, 144:], rtol=1e-6, atol=1e-6)
        assert np.abs(base[:, 144:]).max() > 0.5  # the hue block is not all zeros
    # The weight lives in the saved statistics: a checkpoint's pipeline applies it.
    restored = InputPipeline.from_state(weighted.inputs.config(), weighted.inputs.state())
    np.testing.assert_array_equal(restored.transform(weighted.test_rows),
                                  weighted.inputs.transform(weighted.test_rows))


def test_each_feature_phase_logs_what_it_did_and_its_time(python_dir):
    import re

    lines = []
    sets = [f"data.dir={python_dir}", "data.num_val=50", "data.hflip_copies=true",
            "features=[{type: bow, words: 8, samples: 2000, iterations: 2}, hog]"]
    data = build_dataset(load_config(None, sets), load_cifar10(python_dir, "python"), python_dir,
                         progress=False, log=lines.append)
    n, width = len(data.y_train) // 2, data.X_train.shape[1]
    timed = [line for line in lines if re.search(r" in \d+\.\d s$", line)]
    assert [re.sub(r" in \d+\.\d s$", "", line) for line in timed] == [
        "bow: 8 words ready",
        f"features: {n} train images and their mirrors ({width} values each)",
        f"features: {len(data.y_val)} val images ({width} values each)",
        f"features: {len(data.y_test)} test images ({width} values each)",
    ]


def test_hflip_copies_are_counted_and_refused_for_points():
    from cs_nets.errors import ConfigError
    from cs_nets.memory import estimate_bytes

    plain = estimate_bytes(load_config(None, ["features=[hog]"]))
    doubled = estimate_bytes(load_config(None, ["features=[hog]", "data.hflip_copies=true"]))
    assert doubled["inputs"] > 1.9 * plain["inputs"] and doubled["features"] > plain["features"]
    with pytest.raises(ConfigError, match="data.hflip_copies mirrors images"):
        load_config(None, ["data.source=spiral", "data.hflip_copies=true"])
