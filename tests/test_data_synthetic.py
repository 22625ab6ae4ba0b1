"""The synthetic CIFAR stand-in: shaped like CIFAR-10, deterministic, and learnable."""

import numpy as np

from cs_nets.data.synthetic import make_synthetic


def test_shapes_dtypes_and_balanced_labels():
    raw = make_synthetic(num_train=1000, num_test=205, seed=1)
    assert raw.X_train.shape == (1000, 3072) and raw.X_train.dtype == np.uint8
    assert raw.X_test.shape == (205, 3072) and raw.y_test.dtype == np.int64
    assert np.bincount(raw.y_train).tolist() == [100] * 10
    assert set(np.bincount(raw.y_test).tolist()) == {20, 21}
    assert raw.class_names == [f"class{k}" for k in range(10)] and raw.layout == "synthetic"
    assert 60 < raw.X_train.mean() < 200 and raw.X_train.std() > 30  # image-like spread
    assert make_synthetic(100, 10, num_classes=3).y_train.max() == 2


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_synthetic(300, 50, seed=4), make_synthetic(300, 50, seed=4)
    c = make_synthetic(300, 50, seed=5)
    for key in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.X_train, c.X_train)


def test_a_nearest_class_mean_classifier_beats_chance_by_far():
    raw = make_synthetic(num_train=2000, num_test=500, seed=0)
    X = raw.X_train.astype(np.float32)
    means = np.stack([X[raw.y_train == k].mean(axis=0) for k in range(10)])
    Xt = raw.X_test.astype(np.float32)
    distances = (Xt ** 2).sum(1)[:, None] - 2 * Xt @ means.T + (means ** 2).sum(1)[None, :]
    accuracy = np.mean(distances.argmin(axis=1) == raw.y_test)
    assert 0.6 < accuracy < 0.99  # learnable, not trivial
