"""The minibatch SGD loop, with a scripted model (exact control) and real models on synthetic data."""

import numpy as np
import pytest

from cs_nets.config import OptimConfig, TrainConfig
from cs_nets.data.preprocess import Normalizer, split_train_val
from cs_nets.data.synthetic import make_synthetic
from cs_nets.errors import ArgumentError
from cs_nets.nn.grads_out import Gradients
from cs_nets.nn.models import build_model
from cs_nets.training.trainer import fit


class ScriptedModel:
    """w grows by learning_rate every batch; it predicts the validation labels only when round(w) == good.

    loss() turns nan once w reaches `nan_at`, to test the divergence stop.
    """

    def __init__(self, good=2.0, nan_at=None):
        self.params = {"w": np.zeros(1)}
        self.good, self.nan_at = good, nan_at

    def loss(self, X, y=None, grads_out=None):
        value = float("nan") if self.nan_at is not None and self.params["w"][0] >= self.nan_at else 1.0
        grads = Gradients() if grads_out is None else grads_out  # the model contract (cs_nets.nn.grads_out)
        grads.put("w", -np.ones(1))  # dL/dw: every step moves w up by the learning rate
        return value, grads.grads

    def predict(self, X):
        hit = abs(self.params["w"][0] - self.good) < 0.5
        return np.zeros(len(X), np.int64) if hit else np.ones(len(X), np.int64)


def scripted_run(model, epochs=6, patience=None):
    X, y = np.zeros((10, 3)), np.zeros(10, np.int64)
    seen = []
    result = fit(model, X, y, X, y, OptimConfig(learning_rate=1.0),
                   TrainConfig(batch_size=10, num_epochs=epochs, patience=patience), progress=False,
                   on_epoch=lambda m, s: seen.append((m["epoch"], float(model.params["w"][0]))))
    return result, seen


def test_best_validation_parameters_are_restored():
    model = ScriptedModel(good=2.0)
    result, seen = scripted_run(model, epochs=6)
    assert [w for _, w in seen] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # one batch per epoch, lr 1
    assert [m["val_accuracy"] for m in result.history] == [0, 1, 0, 0, 0, 0]
    assert result.best_epoch == 2 and result.best_val_accuracy == 1.0
    assert model.params["w"][0] == 2.0
    assert result.status == "completed"


def test_patience_stops_early():
    model = ScriptedModel(good=2.0)
    result, _ = scripted_run(model, epochs=20, patience=3)
    assert result.status == "early_stopped"
    assert len(result.history) == 5  # best at 2, then 3 epochs without improvement
    assert model.params["w"][0] == 2.0


def test_nan_loss_stops_and_keeps_best():
    model = ScriptedModel(good=1.0, nan_at=3.0)
    result, _ = scripted_run(model, epochs=10)
    assert result.status == "diverged"
    assert "epoch 4" in result.message and "smaller learning rate" in result.message
    assert len(result.history) == 3 and result.best_epoch == 1
    assert model.params["w"][0] == 1.0
    assert len(result.batch_losses) == 3 and np.all(np.isfinite(result.batch_losses))


def test_history_fields_and_batch_losses():
    model = ScriptedModel()
    X, y = np.zeros((25, 3)), np.zeros(25, np.int64)
    result = fit(model, X, y, X, y, OptimConfig(learning_rate=0.1), TrainConfig(batch_size=10, num_epochs=2),
                   progress=False)
    assert len(result.batch_losses) == 6  # ceil(25 / 10) batches per epoch, the last one partial
    assert set(result.history[0]) == {"epoch", "train_loss", "train_data_loss", "train_reg_loss", "train_accuracy",
                                      "val_accuracy", "lr", "seconds"}
    assert result.history[0]["train_data_loss"] is None  # a model without loss_parts: the split is unknown
    assert result.history[1]["epoch"] == 2 and result.history[0]["train_loss"] == 1.0
    # val accuracy never improves after epoch 1, so epoch 1's parameters (3 batches of lr 0.1) come back
    assert model.params["w"][0] == pytest.approx(0.3)


def synthetic_inputs(seed=0, dtype="float32"):
    split = split_train_val(make_synthetic(1500, 300, seed=seed), num_val=300)
    norm = Normalizer("mean", dtype=dtype).fit(split.X_train)
    return [norm.transform(split.X_train), split.y_train, norm.transform(split.X_val), split.y_val]


def fit_synthetic(model_type, data, seed=0, epochs=6, **hyper):
    model = build_model(model_type, data[0].shape[1], 10, dtype=data[0].dtype.name, seed=seed, **hyper)
    result = fit(model, *data, OptimConfig(learning_rate=1e-3, momentum=0.9),
                   TrainConfig(batch_size=100, num_epochs=epochs), seed=seed, progress=False)
    return model, result


def test_two_layer_learns_synthetic_data():
    data = synthetic_inputs()
    model, result = fit_synthetic("two_layer", data, hidden_dim=64, reg=1e-4)
    assert result.best_val_accuracy > 0.8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_linear_learns_synthetic_data():
    data = synthetic_inputs()
    _, result = fit_synthetic("linear", data, loss="svm", reg=1e-4)
    assert result.best_val_accuracy > 0.6


def test_same_seed_gives_bit_identical_parameters():
    data = synthetic_inputs()
    a, _ = fit_synthetic("two_layer", data, seed=3, epochs=2, hidden_dim=32)
    b, _ = fit_synthetic("two_layer", data, seed=3, epochs=2, hidden_dim=32)
    c, _ = fit_synthetic("two_layer", data, seed=4, epochs=2, hidden_dim=32)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["W1"], c.params["W1"])


def test_hflip_needs_images():
    data = synthetic_inputs()
    small = [data[0][:, :10], data[1], data[2][:, :10], data[3]]
    model = build_model("linear", 10, 10)
    with pytest.raises(ValueError, match="hflip"):
        fit(model, *small, OptimConfig(), TrainConfig(hflip=True), progress=False)


def loop_flip_half(batch, flip, side):
    """The trainer's flip, pixel by pixel: image i's column c becomes column side - 1 - c when flip[i]."""
    out = batch.copy()
    for i in range(len(batch)):
        if flip[i]:
            for channel in range(3):
                for r in range(side):
                    for c in range(side):
                        out[i, (channel * side + r) * side + c] = batch[i, (channel * side + r) * side + side - 1 - c]
    return out


@pytest.mark.parametrize("side", [24, 32])
def test_flip_half_mirrors_the_drawn_half_of_square_images_of_any_size(side):
    from cs_nets.training.trainer import _flip_half

    batch = np.random.default_rng(side).standard_normal((9, 3 * side * side)).astype(np.float32)
    flip = np.random.default_rng(5).random(9) < 0.5  # what _flip_half draws from the same generator
    assert 0 < flip.sum() < 9
    got = batch.copy()
    _flip_half(got, np.random.default_rng(5), side)
    np.testing.assert_array_equal(got, loop_flip_half(batch, flip, side))


class BatchRecorder:
    """A linear-looking model that records every minibatch it is given and learns nothing."""

    def __init__(self, dim):
        self.params = {"w": np.zeros(1)}
        self.batches = []

    def loss(self, X, y=None, grads_out=None):
        self.batches.append(X.copy())
        grads = Gradients() if grads_out is None else grads_out
        grads.put("w", np.zeros(1))
        return 1.0, grads.grads

    def predict(self, X):
        return np.zeros(len(X), np.int64)


def test_hflip_in_training_flips_24x24_rows_and_refuses_rows_that_are_not_square_images():
    side, n = 24, 40
    X = np.random.default_rng(0).standard_normal((n, 3 * side * side)).astype(np.float32)
    y = np.zeros(n, np.int64)
    model = BatchRecorder(X.shape[1])
    fit(model, X, y, X[:4], y[:4], OptimConfig(), TrainConfig(batch_size=8, num_epochs=2, hflip=True), progress=False)
    mirrored = X.reshape(n, 3, side, side)[..., ::-1].reshape(n, -1)
    flipped = kept = 0
    for batch in model.batches:
        for row in batch:
            i = int(np.flatnonzero((X == row).all(axis=1) | (mirrored == row).all(axis=1))[0])
            flipped += bool((mirrored[i] == row).all())
            kept += bool((X[i] == row).all())
    assert flipped + kept == 2 * n and 0 < flipped < 2 * n  # each row as it is or mirrored, both happen
    for dim in (3 * 24 * 24 + 3, 2, 10):
        with pytest.raises(ArgumentError, match=rf"train.hflip flips square colour images: rows of 3\*S\*S values, "
                                                rf"got {dim} values per row"):
            fit(BatchRecorder(dim), np.zeros((4, dim), np.float32), np.zeros(4, np.int64),
                np.zeros((2, dim), np.float32), np.zeros(2, np.int64), OptimConfig(), TrainConfig(hflip=True),
                progress=False)
