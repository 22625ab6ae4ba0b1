"""Random search: determinism, consistency of the result, and that it finds something."""

import numpy as np
import pytest

from cs_nets.errors import ArgumentError
from cs_nets.nn.models import LinearClassifier, build_model
from cs_nets.nn.random_search import SearchResult, random_search

C = 3


@pytest.fixture(scope="module")
def blobs():
    """An easy, linearly separable 3-class problem in 2-D (float32)."""
    rng = np.random.default_rng(0)
    centers = np.array([[4.0, 0.0], [-2.0, 3.5], [-2.0, -3.5]])
    y = rng.integers(C, size=300)
    X = (centers[y] + 0.5 * rng.standard_normal((300, 2))).astype(np.float32)
    return X, y


def test_result_is_consistent(blobs):
    X, y = blobs
    result = random_search(X, y, attempts=50, scale=1.0, num_classes=C, seed=3)
    assert isinstance(result, SearchResult)
    assert result.losses.shape == (50,) and result.losses.dtype == np.float64
    assert result.best_loss == result.losses.min()
    assert result.best_attempt == int(np.argmin(result.losses))
    assert isinstance(result.model, LinearClassifier) and result.model.model_type == "linear"
    assert result.model.dtype == np.float32
    assert result.model.hyperparams() == {"loss": "svm", "reg": 0.0, "init": 1.0}
    model_loss, _ = result.model.loss(X, y)
    assert model_loss == pytest.approx(result.best_loss, rel=1e-6, abs=1e-7)


def test_beats_chance_on_a_separable_problem(blobs):
    X, y = blobs
    result = random_search(X, y, attempts=100, scale=1.0, num_classes=C, seed=0)
    accuracy = np.mean(result.model.predict(X) == y)
    assert accuracy > 0.9  # chance is 1/3
    assert result.best_loss < 0.5 * np.median(result.losses)


def test_deterministic_for_a_seed_and_independent_of_chunk(blobs):
    X, y = blobs
    X64 = X.astype(np.float64)
    a = random_search(X64, y, attempts=20, scale=0.5, num_classes=C, seed=7, loss="softmax")
    b = random_search(X64, y, attempts=20, scale=0.5, num_classes=C, seed=7, loss="softmax")
    c = random_search(X64, y, attempts=20, scale=0.5, num_classes=C, seed=7, loss="softmax", chunk=3)
    d = random_search(X64, y, attempts=20, scale=0.5, num_classes=C, seed=8, loss="softmax")
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.model.params["W"], b.model.params["W"])
    np.testing.assert_allclose(c.losses, a.losses, rtol=1e-12)
    assert c.best_attempt == a.best_attempt
    assert not np.allclose(d.losses, a.losses)
    # more attempts with the same seed replay the first ones
    e = random_search(X64, y, attempts=25, scale=0.5, num_classes=C, seed=7, loss="softmax")
    np.testing.assert_allclose(e.losses[:20], a.losses, rtol=1e-12)


def test_weights_and_bias_are_drawn_with_the_given_scale():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 800))
    y = rng.integers(10, size=40)
    result = random_search(X, y, attempts=1, scale=1e-4, seed=0)
    W, b = result.model.params["W"], result.model.params["b"]
    assert W.shape == (800, 10) and b.shape == (10,)
    assert W.std() == pytest.approx(1e-4, rel=0.05)
    assert np.all(b != 0) and np.abs(b).max() < 5e-4
    # the single attempt's loss is the SVM data loss of exactly these weights
    model = build_model("linear", 800, 10, dtype="float64", loss="svm")
    model.load_params({"W": W, "b": b})
    assert result.losses[0] == pytest.approx(model.loss(X, y)[0], rel=1e-12)


def test_progress_reports_every_attempt_with_the_running_best(blobs):
    X, y = blobs
    calls = []
    result = random_search(X, y, attempts=10, scale=1.0, num_classes=C, chunk=4,
                           progress=lambda i, best: calls.append((i, best)))
    assert [i for i, _ in calls] == list(range(10))
    bests = [best for _, best in calls]
    assert bests == list(np.minimum.accumulate(result.losses))
    assert bests[-1] == result.best_loss


def test_subsample(blobs):
    X, y = blobs
    full = random_search(X, y, attempts=10, scale=1.0, num_classes=C)
    everything = random_search(X, y, attempts=10, scale=1.0, num_classes=C, subsample=10_000)
    np.testing.assert_array_equal(everything.losses, full.losses)
    part = random_search(X, y, attempts=10, scale=1.0, num_classes=C, subsample=20)
    again = random_search(X, y, attempts=10, scale=1.0, num_classes=C, subsample=20)
    np.testing.assert_array_equal(part.losses, again.losses)
    assert not np.allclose(part.losses, full.losses)
    # the documented subsample: 20 rows drawn by the first child of SeedSequence(seed)
    (child,) = np.random.SeedSequence(0).spawn(1)
    rows = np.sort(np.random.default_rng(child).choice(len(y), 20, replace=False))
    assert part.model.loss(X[rows], y[rows])[0] == pytest.approx(part.best_loss, rel=1e-6)


def test_integer_pixels_are_scored_in_float32():
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, size=(30, 12), dtype=np.uint8)
    y = rng.integers(C, size=30)
    result = random_search(X, y, attempts=5, num_classes=C)
    assert result.model.dtype == np.float32 and result.model.params["W"].dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"attempts": 0}, "attempts"),
        ({"scale": 0.0}, "scale"),
        ({"scale": "big"}, "scale"),
        ({"loss": "hinge"}, "loss"),
        ({"subsample": 0}, "subsample"),
        ({"chunk": 0}, "chunk"),
        ({"seed": -1}, "seed"),
        ({"num_classes": 2}, "y"),  # labels go up to 2
        ({"progress": "bar"}, "progress"),
    ],
)
def test_bad_arguments_raise_config_error(blobs, kwargs, word):
    X, y = blobs
    kwargs = {"num_classes": C, **kwargs}
    with pytest.raises(ArgumentError, match=rf"^{word}:"):
        random_search(X, y, **kwargs)


def test_bad_data_raise_config_error():
    with pytest.raises(ArgumentError, match=r"^X:"):
        random_search(np.zeros(5), np.zeros(5, dtype=int))
    with pytest.raises(ArgumentError, match=r"^y:"):
        random_search(np.zeros((5, 2)), np.zeros(4, dtype=int))
