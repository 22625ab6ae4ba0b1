"""Bag-of-words features: k-means, the encoder, the codebook's training-only view, the cache.

The fast routines are held to slow, obvious twins written here: a k-means that
loops over points and centroids, and an encoder that loops over patch positions.
"""

import numpy as np
import pytest
from bow_loops import loop_encode

from cs_nets.config import config_from_dict
from cs_nets.data.pipeline import InputPipeline, build_dataset, split_of
from cs_nets.data.synthetic import make_synthetic
from cs_nets.errors import ArgumentError, ConfigError
from cs_nets.features import (
    Codebook,
    Encoder,
    cache_path,
    cached_codebook,
    cached_features,
    codebook_path,
    encode_images,
    extract_features,
    feature_dim,
    fit_codebook,
    normalize_transforms,
)
from cs_nets.features import cache as cache_module
from cs_nets.features.bow import (
    CONTRAST_EPS,
    TILE_ELEMENTS,
    _normalize_columns,
    _windows,
    _windows_t,
    fit_whitening,
    kmeans,
    kmeans_init,
    nearest_centroid,
    normalize_patches,
    pool_matrix,
    regions,
    sample_patches,
)

# ------------------------------------------------------------------ plain-loop twins


def loop_kmeans(P, centroids, iterations):
    """k-means one point and one centroid at a time, in float64."""
    P = P.astype(np.float64)
    C = centroids.astype(np.float64).copy()
    for _ in range(iterations):
        labels = []
        for x in P:
            best, best_d = 0, np.inf
            for j, c in enumerate(C):
                d = sum((a - b) ** 2 for a, b in zip(x, c))
                if d < best_d:
                    best, best_d = j, d
            labels.append(best)
        for j in range(len(C)):
            members = [x for x, label in zip(P, labels) if label == j]
            if members:
                C[j] = sum(members) / len(members)
    return C


# ------------------------------------------------------------------ k-means


def blobs(seed, n=120, dim=5, k=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, dim))
    return (centres[rng.integers(0, k, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_equals_the_plain_loop(seed):
    P = blobs(seed)
    start = P[kmeans_init(P, 4, np.random.default_rng(seed))]
    got = kmeans(P, start, iterations=6)
    np.testing.assert_allclose(got, loop_kmeans(P, start, 6), rtol=1e-5, atol=1e-5)
    assert got.dtype == np.float32


def test_kmeans_centroid_without_points_stays_put():
    P = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=np.float32)
    start = np.array([[0, 0.5], [10, 10.5], [100, 100]], dtype=np.float32)
    got = kmeans(P, start, iterations=3)
    np.testing.assert_array_equal(got, [[0, 0.5], [10, 10.5], [100, 100]])
    np.testing.assert_array_equal(loop_kmeans(P, start, 3), got)


def test_kmeans_init_picks_distinct_rows_reproducibly():
    P = blobs(3)
    a = kmeans_init(P, 10, np.random.default_rng(7))
    assert len(set(a.tolist())) == 10 and list(a) == sorted(a)
    np.testing.assert_array_equal(a, kmeans_init(P, 10, np.random.default_rng(7)))
    with pytest.raises(ArgumentError, match="need 1 <= k <= 120"):
        kmeans_init(P, 121, np.random.default_rng(0))


@pytest.mark.parametrize("threads", [1, 3])
def test_nearest_centroid_matches_brute_force_across_blocks(monkeypatch, threads):
    monkeypatch.setattr("cs_nets.features.bow.BLOCK_ELEMENTS", 8)  # several row blocks
    P, C = blobs(4, n=50), blobs(5, n=6)
    expected = np.argmin(((P[:, None, :].astype(np.float64) - C[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest_centroid(P, C, threads=threads), expected)


# ------------------------------------------------------------------ patches and whitening


def test_normalized_patches_have_zero_mean_and_contrast_eps_variance():
    P = np.random.default_rng(0).uniform(0, 255, size=(20, 27)).astype(np.float32)
    P[0] = 77  # a flat patch becomes all zeros, not noise
    out = normalize_patches(P.copy())
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    v = P[1:].var(axis=1)
    np.testing.assert_allclose(out[1:].var(axis=1), v / (v + CONTRAST_EPS), rtol=1e-4)


def test_whitening_gives_nearly_identity_covariance():
    rng = np.random.default_rng(1)
    P = (rng.normal(size=(5000, 4)) @ rng.normal(size=(4, 4)) * 5 + 3).astype(np.float32)
    mean, W = fit_whitening(P)
    Z = (P - mean) @ W
    cov = np.cov(Z.T.astype(np.float64), bias=True)
    np.testing.assert_allclose(cov, np.eye(4), atol=0.05)  # 1/(1+0.1/s) ≈ 1 for these variances
    np.testing.assert_allclose(W, W.T, atol=1e-6)  # ZCA: symmetric


@pytest.mark.parametrize("side", [32, 24, 40])
def test_sampled_patches_are_windows_of_the_given_images(side):
    X = np.random.default_rng(2).integers(0, 256, size=(3, 3 * side * side), dtype=np.uint8)
    images = X.reshape(3, 3, side, side)
    last = side - 4 + 1
    windows = {images[n, :, r:r + 4, c:c + 4].tobytes() for n in range(3) for r in range(last) for c in range(last)}
    bottom = {images[n, :, last - 1:side, c:c + 4].tobytes() for n in range(3) for c in range(last)}
    right = {images[n, :, r:r + 4, last - 1:side].tobytes() for n in range(3) for r in range(last)}
    got = sample_patches(X, 4, 2000, np.random.default_rng(0), side=side)
    assert got.shape == (2000, 48) and got.dtype == np.float32
    drawn = {row.astype(np.uint8).reshape(3, 4, 4).tobytes() for row in got}
    assert drawn <= windows
    assert drawn & bottom and drawn & right  # the whole image is sampled, up to its last row and column


# ------------------------------------------------------------------ encoder


def small_codebook(patch, words, whiten, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(40, 3072), dtype=np.uint8)
    return fit_codebook(images, words=words, patch=patch, whiten=whiten, samples=2000, iterations=3, seed=seed)


@pytest.mark.parametrize("encoding", ["triangle", "hard"])
@pytest.mark.parametrize("pooling", ["quadrants", "image"])
@pytest.mark.parametrize("whiten, stride, side", [(True, 1, 12), (False, 3, 14), (True, 2, 9)])
@pytest.mark.parametrize("threads", [1, 3])
def test_encoder_equals_the_per_patch_loop(encoding, pooling, whiten, stride, side, threads):
    codebook = small_codebook(patch=4, words=7, whiten=whiten)
    images = np.random.default_rng(3).integers(0, 256, size=(5, 3, side, side), dtype=np.uint8)
    images[1] = 128  # a flat image: every patch normalizes to zero
    # batch=2: the images are encoded in several tiles, by one worker or by several at once
    got = Encoder(codebook, stride, encoding, pooling, batch=2, side=side, threads=threads)(images)
    expected = np.stack([loop_encode(im, codebook, stride, encoding, pooling) for im in images])
    assert got.shape == expected.shape == (5, 7 * (4 if pooling == "quadrants" else 1))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("side, stride, pooling", [(24, 1, "quadrants"), (40, 3, "quadrants"), (24, 2, "image")])
def test_extracted_bow_features_of_any_image_size_equal_the_per_patch_loop(side, stride, pooling):
    rng = np.random.default_rng(side)
    X = rng.integers(0, 256, size=(30, 3 * side * side), dtype=np.uint8)
    spec = [{"type": "bow", "words": 6, "patch": 5, "stride": stride, "pooling": pooling, "samples": 1500,
             "iterations": 3}]
    codebook = fit_codebook(X, words=6, patch=5, samples=1500, iterations=3, side=side)
    got = extract_features(X[:4], spec, progress=False, codebooks=[codebook], image_size=side)
    images = X[:4].reshape(4, 3, side, side)
    expected = np.stack([loop_encode(im, codebook, stride, "triangle", pooling) for im in images])
    assert got.shape == expected.shape == (4, feature_dim(spec, (side, side, 3)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ArgumentError, match="patch 5 is larger than the 4x4 images"):
        fit_codebook(X[:, :48], words=2, patch=5, samples=1000, side=4)
    with pytest.raises(ArgumentError, match=f"{side}x{side} colour images have {3 * side * side}"):
        fit_codebook(X[:, :-3], words=2, patch=5, samples=1000, side=side)


def test_codebooks_of_32x32_images_are_those_of_mains_code_path(tmp_path):
    """fit_codebook at the default size equals the code before image sizes (issue 20), and its cache key too."""
    X = np.random.default_rng(11).integers(0, 256, size=(6, 3072), dtype=np.uint8)
    codebook = fit_codebook(X, words=5, patch=5, samples=1000, iterations=2, seed=3)
    assert codebook.digest() == fit_codebook(X, words=5, patch=5, samples=1000, iterations=2, seed=3,
                                             side=32).digest()
    assert codebook.digest() == "db1cbc539d39e6ec8a361a8a8a13dcb89ec05e48dce55c079e9740271f93dad0"
    (t,) = normalize_transforms([{"type": "bow", "words": 5, "patch": 4, "samples": 1000, "iterations": 2}])
    assert codebook_path(tmp_path, "fp", t).name == "codebook-824ed9dfc41a4c24207068eb.npz"
    assert len({codebook_path(tmp_path, "fp", t, image_size=size) for size in (24, 32, 40)}) == 3


def test_default_tiles_and_workers_give_the_same_codes():
    codebook = small_codebook(patch=6, words=9, whiten=True)
    images = np.random.default_rng(6).integers(0, 256, size=(7, 3, 32, 32), dtype=np.uint8)
    encoder = Encoder(codebook)
    assert encoder.batch == max(1, TILE_ELEMENTS // (27 * 27 * 9)) and encoder.threads >= 1
    expected = np.stack([loop_encode(im, codebook, 1, "triangle", "quadrants") for im in images])
    np.testing.assert_allclose(encoder(images), expected, rtol=1e-4, atol=1e-4)


def test_triangle_pooling_treats_negative_squared_distances_as_zero():
    # Rounding can make ||z - c||² come out just below 0; the code must be that of a distance 0.
    codebook = small_codebook(patch=4, words=5, whiten=False)
    encoder = Encoder(codebook, stride=1, side=5)  # 2 x 2 positions: one patch per quadrant
    d2 = np.random.default_rng(7).uniform(0, 50, size=(2 * 4, 5)).astype(np.float32)
    d2[1, 3] = -1e-6
    d2[6, 0] = -3e-7
    d2[6, 4] = 0.0
    dist = np.sqrt(np.maximum(d2.astype(np.float64), 0))
    expected = np.maximum(0, dist.mean(axis=1, keepdims=True) - dist).reshape(2, 4, 5)
    out = np.empty((2, 4, 5), dtype=np.float32)
    encoder._pool_triangle(d2.copy(), out, pool_matrix(*regions(2, "quadrants")))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_transposed_windows_and_column_normalization_match_the_row_versions():
    images = np.random.default_rng(8).integers(0, 256, size=(3, 3, 11, 11), dtype=np.uint8)
    images[2] = 9
    for stride in (1, 2, 3):
        rows = np.ascontiguousarray(_windows(images, 4, stride)).reshape(-1, 48).astype(np.float32)
        cols = np.ascontiguousarray(_windows_t(images, 4, stride)).reshape(48, -1).astype(np.float32)
        np.testing.assert_array_equal(cols.T, rows)
        np.testing.assert_allclose(_normalize_columns(cols).T, normalize_patches(rows), rtol=1e-5, atol=1e-6)


def test_hard_codes_are_fractions_of_patches_and_sum_to_one_per_region():
    codebook = small_codebook(patch=6, words=16, whiten=True)
    images = np.random.default_rng(4).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    f = encode_images(images, codebook, stride=2, encoding="hard", pooling="quadrants").reshape(3, 4, 16)
    np.testing.assert_allclose(f.sum(axis=2), 1, rtol=1e-6)
    # 14 x 14 positions: quadrants of 7 x 7 = 49 patches, so every value is a multiple of 1/49
    np.testing.assert_allclose(f * 49, np.round(f * 49), atol=1e-4)


def test_encoder_rejects_unknown_choices():
    with pytest.raises(ArgumentError, match="encoding/pooling"):
        Encoder(small_codebook(4, 3, False), encoding="soft")


# ------------------------------------------------------------------ spec and state


def test_bow_spec_defaults_ranges_and_size():
    (t,) = normalize_transforms(["bow"])
    assert t == {"type": "bow", "words": 256, "patch": 6, "stride": 1, "encoding": "triangle",
                 "pooling": "quadrants", "whiten": True, "samples": 100_000, "iterations": 20, "seed": 0,
                 "symmetric": False, "weight": 1.0}
    assert feature_dim(["bow"]) == 1024
    assert feature_dim([{"type": "bow", "words": 100, "pooling": "image"}, "hog"]) == 100 + 144
    for bad, match in [({"words": 0}, "words: got 0"), ({"encoding": "soft"}, "encoding: got 'soft'"),
                       ({"whiten": 1}, "whiten: got 1, expected true or false"),
                       ({"symmetric": "yes"}, "symmetric: got 'yes', expected true or false"),
                       ({"symmetric": True, "words": 15}, "words: got 15, expected an even number"),
                       ({"samples": 1000, "words": 2000}, "samples: got 1000, expected at least words")]:
        with pytest.raises(ConfigError, match=match):
            normalize_transforms([{"type": "bow", **bad}])
    with pytest.raises(ConfigError, match=r"leaves 1 patch position\(s\) per side of a 16x16 image"):
        feature_dim([{"type": "bow", "patch": 16}], image_shape=(16, 16, 3))


def test_codebook_state_round_trip_and_validation():
    codebook = small_codebook(patch=4, words=5, whiten=True)
    back = Codebook.from_state(codebook.state(), patch=4, words=5, whiten=True)
    assert back.digest() == codebook.digest()
    with pytest.raises(ArgumentError, match="lacks 'whiten_matrix'"):
        Codebook.from_state({"centroids": codebook.centroids, "whiten_mean": codebook.whiten_mean},
                            patch=4, words=5, whiten=True)
    with pytest.raises(ArgumentError, match=r"centroids: expected finite \(6, 48\)"):
        Codebook.from_state(codebook.state(), patch=4, words=6, whiten=True)


def test_extract_needs_a_codebook_for_bow():
    X = np.zeros((2, 3072), dtype=np.uint8)
    with pytest.raises(ArgumentError, match=r"features\[1\] \(bow\) needs a fitted codebook"):
        extract_features(X, ["hog", "bow"], progress=False)


# ------------------------------------------------------------------ training split only


def bow_config(**data):
    return config_from_dict({
        "data": {"source": "synthetic", "num_val": 40, **data},
        "features": [{"type": "bow", "words": 8, "patch": 6, "stride": 4, "samples": 3000, "iterations": 3},
                     {"type": "color_hist"}],
        "model": {"type": "linear"},
    })


def test_codebook_never_sees_validation_or_test_rows():
    config = bow_config()
    raw = make_synthetic(200, 50, seed=1)
    base = build_dataset(config, raw, progress=False)
    # Other validation and test images, same training images: the same codebook, bit for bit.
    other = make_synthetic(200, 50, seed=2)
    mixed = make_synthetic(200, 50, seed=1)
    mixed.X_train[160:] = other.X_train[160:]  # rows 160..199 are the validation split
    mixed.X_test[:] = other.X_test
    again = build_dataset(config, mixed, progress=False)
    assert again.inputs.codebooks[0].digest() == base.inputs.codebooks[0].digest()
    np.testing.assert_array_equal(again.X_train, base.X_train)
    assert not np.array_equal(again.X_val, base.X_val)
    # ... and it is exactly the codebook of the training rows alone.
    split = split_of(raw, config.data, config.seed)
    alone = fit_codebook(split.X_train, words=8, patch=6, samples=3000, iterations=3)
    assert alone.digest() == base.inputs.codebooks[0].digest()
    # The check can fail: other training images give another codebook.
    changed = make_synthetic(200, 50, seed=1)
    changed.X_train[:10] = other.X_train[:10]
    assert build_dataset(config, changed, progress=False).inputs.codebooks[0].digest() != alone.digest()


def test_pipeline_state_carries_the_codebook():
    data = build_dataset(bow_config(), make_synthetic(200, 50, seed=1), progress=False)
    arrays = data.inputs.state()
    assert {"features/0/centroids", "features/0/whiten_mean", "features/0/whiten_matrix"} <= set(arrays)
    restored = InputPipeline.from_state(data.inputs.config(), arrays)
    X = make_synthetic(200, 50, seed=1).X_test
    features = restored.extract(X, None, progress=False)
    np.testing.assert_array_equal(features, data.test_rows)
    np.testing.assert_array_equal(restored.transform(features), data.inputs.transform(data.test_rows))
    del arrays["features/0/centroids"]
    with pytest.raises(ArgumentError, match="lacks 'centroids'"):
        InputPipeline.from_state(data.inputs.config(), arrays)


# ------------------------------------------------------------------ cache


def test_cache_is_keyed_by_the_codebook_and_every_parameter(tmp_path, monkeypatch):
    X = np.random.default_rng(5).integers(0, 256, size=(4, 3072), dtype=np.uint8)
    spec = [{"type": "bow", "words": 5, "patch": 4, "samples": 1000, "iterations": 2}]
    codebook = fit_codebook(X, words=5, patch=4, samples=1000, iterations=2)
    first = cached_features(X, spec, tmp_path, "fp", progress=False, codebooks=[codebook])
    np.testing.assert_array_equal(first, extract_features(X, spec, progress=False, codebooks=[codebook]))
    path = cache_path(tmp_path, "fp", spec, [codebook])
    assert path.is_file()
    # Every parameter and the codebook's content change the key.
    other_codebook = fit_codebook(X, words=5, patch=4, samples=1000, iterations=2, seed=1)
    keys = {path, cache_path(tmp_path, "fp", spec, [other_codebook])}
    for key, value in [("words", 6), ("patch", 5), ("stride", 2), ("encoding", "hard"), ("pooling", "image"),
                       ("whiten", False), ("samples", 1001), ("iterations", 3), ("seed", 1)]:
        keys.add(cache_path(tmp_path, "fp", [{**spec[0], key: value}], [codebook]))
    assert len(keys) == 11
    # A hit reads the file instead of encoding again.
    monkeypatch.setattr(cache_module, "extract_features", lambda *a, **k: pytest.fail("recomputed on a hit"))
    np.testing.assert_array_equal(cached_features(X, spec, tmp_path, "fp", codebooks=[codebook]), first)


def test_codebook_is_cached_by_training_images_and_kmeans_parameters(tmp_path, monkeypatch):
    calls = []
    real_fit = cache_module_fit_codebook()

    def counting_fit(*args, **kwargs):
        calls.append(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr("cs_nets.features.bow.fit_codebook", counting_fit)
    config = bow_config()
    first = build_dataset(config, make_synthetic(200, 50, seed=1), tmp_path, progress=False)
    assert len(calls) == 1
    (path,) = (tmp_path / "features").glob("codebook-*.npz")
    # A second run reads the codebook (and so finds the same feature cache): k-means does not run again.
    again = build_dataset(config, make_synthetic(200, 50, seed=1), tmp_path, progress=False)
    assert len(calls) == 1
    assert again.inputs.codebooks[0].digest() == first.inputs.codebooks[0].digest()
    np.testing.assert_array_equal(again.X_train, first.X_train)
    # Other training images, or another k-means parameter: another key, learned again.
    t = normalize_transforms(config.features)[0]
    assert codebook_path(tmp_path, "fp", t) != codebook_path(tmp_path, "other", t)
    for key, value in [("words", 9), ("patch", 5), ("whiten", False), ("samples", 3001), ("iterations", 4),
                       ("seed", 1)]:
        assert codebook_path(tmp_path, "fp", {**t, key: value}) != codebook_path(tmp_path, "fp", t)
    # ... but not the encoder's own parameters, which k-means never sees.
    for key, value in [("stride", 2), ("encoding", "hard"), ("pooling", "image")]:
        assert codebook_path(tmp_path, "fp", {**t, key: value}) == codebook_path(tmp_path, "fp", t)
    changed = make_synthetic(200, 50, seed=1)
    changed.X_train[:10] = make_synthetic(200, 50, seed=2).X_train[:10]
    build_dataset(config, changed, tmp_path, progress=False)
    assert len(calls) == 2
    assert path.is_file()


@pytest.mark.parametrize("damage", ["nan", "shape", "garbage"])
def test_damaged_codebook_cache_is_reported_in_one_line_and_learned_again(tmp_path, monkeypatch, damage):
    X = np.random.default_rng(9).integers(0, 256, size=(30, 3072), dtype=np.uint8)
    (t,) = normalize_transforms([{"type": "bow", "words": 5, "patch": 4, "samples": 1000, "iterations": 2}])
    good = cached_codebook(X, t, tmp_path, "fp")
    path = codebook_path(tmp_path, "fp", t)
    state = {k: v.copy() for k, v in good.state().items()}
    if damage == "nan":
        state["centroids"][2, 3] = np.nan
        np.savez(path, **state)
    elif damage == "shape":
        state["centroids"] = state["centroids"][:4]
        np.savez(path, **state)
    else:
        path.write_bytes(b"not an npz file")
    calls, messages = [], []
    real_fit = cache_module_fit_codebook()
    monkeypatch.setattr("cs_nets.features.bow.fit_codebook", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    rebuilt = cached_codebook(X, t, tmp_path, "fp", log=messages.append)
    assert calls == [1]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith(f"codebook cache {path} is unusable (")
    assert rebuilt.digest() == good.digest() and np.all(np.isfinite(rebuilt.centroids))
    # The file was replaced by a good one: the next call reads it.
    assert cached_codebook(X, t, tmp_path, "fp", log=messages.append).digest() == good.digest()
    assert calls == [1] and len(messages) == 1


def cache_module_fit_codebook():
    """The real fit_codebook, captured before a test replaces it."""
    from cs_nets.features import bow

    return bow.__dict__["fit_codebook"]
