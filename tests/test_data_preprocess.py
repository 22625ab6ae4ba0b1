"""Train/val splits and the Normalizer fit on the training split only."""

import numpy as np
import pytest

from cs_nets.data import preprocess
from cs_nets.data.cifar10 import RawCifar
from cs_nets.data.preprocess import Normalizer, split_indices, split_train_val
from cs_nets.errors import ArgumentError


def raw_of(n_train=50, n_test=7, D=12, dtype=np.uint8):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, size=(n_train, D)).astype(dtype)
    Xt = rng.integers(0, 256, size=(n_test, D)).astype(dtype)
    return RawCifar(X, np.arange(n_train) % 10, Xt, np.arange(n_test) % 10,
                    [f"c{k}" for k in range(10)], "synthetic", None)


# ---------------------------------------------------------------- splits

def test_unshuffled_split_is_cs231n_style_and_made_of_views():
    raw = raw_of()
    split = split_train_val(raw, num_train=30, num_val=15)

    np.testing.assert_array_equal(split.X_train, raw.X_train[:30])
    np.testing.assert_array_equal(split.X_val, raw.X_train[30:45])
    np.testing.assert_array_equal(split.y_val, raw.y_train[30:45])
    assert split.X_train.base is raw.X_train and split.X_val.base is raw.X_train  # no copies
    assert split.X_test is raw.X_test and split.class_names == raw.class_names


def test_num_train_none_takes_the_rest():
    split = split_train_val(raw_of(), num_val=8)
    assert (len(split.X_train), len(split.X_val)) == (42, 8)


def test_shuffled_split_is_seeded_disjoint_and_in_memory_order():
    train, val = split_indices(100, num_train=60, num_val=25, shuffle=True, seed=5)
    again_train, again_val = split_indices(100, num_train=60, num_val=25, shuffle=True, seed=5)
    other_train, _ = split_indices(100, num_train=60, num_val=25, shuffle=True, seed=6)

    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(train, other_train)
    assert len(np.intersect1d(train, val)) == 0 and len(train) == 60 and len(val) == 25
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert not np.array_equal(train, np.arange(60))  # really shuffled


def test_shuffled_split_takes_matching_rows_and_labels():
    raw = raw_of()
    split = split_train_val(raw, num_train=20, num_val=10, shuffle=True, seed=1)
    train_idx, val_idx = split_indices(50, 20, 10, True, 1)
    np.testing.assert_array_equal(split.X_train, raw.X_train[train_idx])
    np.testing.assert_array_equal(split.y_val, raw.y_train[val_idx])


@pytest.mark.parametrize("chunk_elements", [12, 60, 1 << 21])  # one row, 5 rows, all rows per chunk
def test_in_place_shuffled_split_equals_the_copying_one_and_a_row_loop(monkeypatch, chunk_elements):
    monkeypatch.setattr(preprocess, "CHUNK_ELEMENTS", chunk_elements)
    for num_train, num_val in [(30, 15), (45, 5), (1, 49), (50, 0)]:
        copied = split_train_val(raw_of(dtype=np.float32), num_train, num_val, shuffle=True, seed=2)
        raw = raw_of(dtype=np.float32)
        original = raw.X_train.copy()
        moved = split_train_val(raw, num_train, num_val, shuffle=True, seed=2, in_place=True)
        train_idx, val_idx = split_indices(50, num_train, num_val, True, 2)
        for j, i in enumerate(train_idx):  # reference: one row at a time
            np.testing.assert_array_equal(moved.X_train[j], original[i])
        for name in ("X_train", "y_train", "X_val", "y_val"):
            np.testing.assert_array_equal(getattr(moved, name), getattr(copied, name), err_msg=name)
        assert moved.X_train.base is raw.X_train  # the training rows live in raw's own array
        assert not np.shares_memory(moved.X_val, raw.X_train)  # taken out before the rows moved


def test_split_works_for_feature_arrays_of_any_width_and_dtype():
    raw = raw_of(D=5, dtype=np.float32)
    split = split_train_val(raw, num_train=40, num_val=10)
    assert split.X_train.dtype == np.float32 and split.X_val.shape == (10, 5)


@pytest.mark.parametrize("num_train,num_val", [(45, 10), (None, 51), (0, 10), (10, -1)])
def test_sizes_that_do_not_fit_are_config_errors(num_train, num_val):
    with pytest.raises(ArgumentError, match="num_"):
        split_indices(50, num_train, num_val)


# ---------------------------------------------------------------- Normalizer

def test_mean_is_learned_on_the_training_split_only():
    split = split_train_val(raw_of(), num_train=30, num_val=20)
    norm = Normalizer("mean").fit(split.X_train)

    expected = split.X_train.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(norm.mean_, expected, rtol=1e-6)
    assert not np.allclose(norm.mean_, split.X_val.mean(axis=0))
    out = norm.transform(split.X_val)
    np.testing.assert_allclose(out, split.X_val - expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(norm.transform(split.X_train).mean(axis=0), 0, atol=1e-4)


def test_mean_std_scales_by_the_training_std_and_leaves_constant_features_centered():
    X = raw_of().X_train.astype(np.float64)
    X[:, 3] = 7.0  # constant: std 0
    norm = Normalizer("mean_std", dtype="float64").fit(X)
    out = norm.transform(X)

    std = X.std(axis=0)
    np.testing.assert_allclose(np.delete(out.std(axis=0), 3), 1.0, rtol=1e-12)
    np.testing.assert_allclose(out[:, 0], (X[:, 0] - X[:, 0].mean()) / std[0], rtol=1e-12)
    assert norm.std_[3] == 1.0 and np.all(out[:, 3] == 0)
    new = X[:2].copy()
    new[:, 3] = 9.0
    np.testing.assert_allclose(norm.transform(new)[:, 3], 2.0)  # no blow-up on new data


def test_none_only_casts():
    X = raw_of().X_train
    out = Normalizer("none").fit(X).transform(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_for_outputs_and_statistics(dtype):
    X = raw_of().X_train
    norm = Normalizer("mean_std", dtype=dtype).fit(X)
    assert norm.transform(X).dtype == np.dtype(dtype)
    assert norm.mean_.dtype == np.dtype(dtype) and norm.std_.dtype == np.dtype(dtype)


def test_transform_fills_a_preallocated_output_in_chunks(monkeypatch):
    monkeypatch.setattr(preprocess, "CHUNK_ELEMENTS", 30)  # 12 features -> 2 rows per chunk
    X = raw_of().X_train
    norm = Normalizer().fit(X)
    out = np.full(X.shape, np.nan, dtype=np.float32)
    result = norm.transform(X, out=out)
    assert result is out
    np.testing.assert_allclose(out, X - X.mean(axis=0), rtol=1e-5, atol=1e-4)
    with pytest.raises(ArgumentError, match="out must be float32"):
        norm.transform(X, out=np.empty(X.shape, np.float64))


@pytest.mark.parametrize("mode", ["mean", "mean_std", "none"])
def test_threads_give_bit_identical_statistics_and_outputs_and_in_place_equals_a_copy(monkeypatch, mode):
    monkeypatch.setattr(preprocess, "CHUNK_ELEMENTS", 36)  # 12 features -> 3 rows per chunk, 17 chunks
    X = np.random.default_rng(4).normal(100.0, 30.0, size=(50, 12)).astype(np.float32)
    results = {}
    for threads in (1, 2, 4):
        monkeypatch.setattr(preprocess, "worker_threads", lambda threads=threads: threads)
        norm = Normalizer(mode).fit(X)
        in_place = X.copy()
        assert norm.transform(in_place, out=in_place) is in_place
        results[threads] = (norm.state(), norm.transform(X), in_place)
    for threads in (2, 4):
        state, out, in_place = results[threads]
        assert state.keys() == results[1][0].keys()
        for name in state:
            np.testing.assert_array_equal(state[name], results[1][0][name], err_msg=name)
        np.testing.assert_array_equal(out, results[1][1])
        np.testing.assert_array_equal(in_place, out)
    # reference: the textbook formulas, row loop in float64
    mean = sum(row.astype(np.float64) for row in X) / len(X)
    std = np.sqrt(sum((row - mean) ** 2 for row in X) / len(X))
    expected = {"none": X, "mean": X - mean, "mean_std": (X - mean) / std}[mode]
    np.testing.assert_allclose(results[1][1], expected, rtol=1e-5, atol=1e-4)


def test_worker_threads_follow_the_cpus_and_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    free = preprocess.worker_threads()
    assert 1 <= free <= 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert preprocess.worker_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert preprocess.worker_threads() == free


def test_state_round_trip_through_an_npz(tmp_path):
    X = raw_of().X_train
    norm = Normalizer("mean_std", dtype="float64").fit(X)
    np.savez(tmp_path / "state.npz", **norm.state())
    config = norm.config()
    assert set(norm.state()) == {"mean", "std"}
    assert config == {"mode": "mean_std", "dtype": "float64", "eps": 1e-8, "n_features": 12}

    with np.load(tmp_path / "state.npz") as arrays:
        restored = Normalizer.from_state(config, arrays)
    np.testing.assert_array_equal(restored.transform(X), norm.transform(X))


def test_mean_mode_state_has_only_the_mean_and_missing_arrays_are_refused():
    norm = Normalizer().fit(raw_of().X_train)
    assert set(norm.state()) == {"mean"}
    with pytest.raises(ArgumentError, match="lacks std"):
        Normalizer.from_state({"mode": "mean_std", "dtype": "float32"}, norm.state())


def test_bad_settings_and_unfitted_use_are_config_errors():
    with pytest.raises(ArgumentError, match="mode"):
        Normalizer("median")
    with pytest.raises(ArgumentError, match="dtype"):
        Normalizer(dtype="float16")
    with pytest.raises(ArgumentError, match="not fitted"):
        Normalizer().transform(np.zeros((2, 3)))
    with pytest.raises(ArgumentError, match="fitted on 3"):
        Normalizer().fit(np.zeros((2, 3))).transform(np.zeros((2, 4)))
