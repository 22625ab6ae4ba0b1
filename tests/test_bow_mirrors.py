"""Symmetric bag-of-words codebooks (words in mirror pairs) and the one pass that encodes an image and its mirror.

The mirrors' features from the shared pass are held to the features of mirrors made
column by column and encoded on their own; the pair k-means to a plain loop.
"""

import numpy as np
import pytest
from mirrors import mirrored_by_loop

from cs_nets.data.pipeline import InputPipeline
from cs_nets.errors import ArgumentError
from cs_nets.features import Codebook, Encoder, cache_path, cached_features, extract_features, fit_codebook
from cs_nets.features.bow import fit_whitening, kmeans, mirror_permutation, normalize_patches, sample_patches
from cs_nets.features.cache import cache_key, codebook_path
from cs_nets.features.spec import normalize_transforms


def images(n, side=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)


def symmetric_codebook(words=10, patch=5, whiten=True, side=32):
    return fit_codebook(images(60, side), words=words, patch=patch, whiten=whiten, samples=3000, iterations=4,
                        side=side, symmetric=True)


# ------------------------------------------------------------------ the codebook


def test_mirror_permutation_mirrors_a_patch_column_by_column():
    patch = np.arange(3 * 4 * 4).reshape(3, 4, 4)
    expected = np.stack([patch[:, :, 3 - col] for col in range(4)], axis=2)
    np.testing.assert_array_equal(patch.ravel()[mirror_permutation(4)], expected.ravel())


@pytest.mark.parametrize("whiten", [True, False])
def test_a_symmetric_codebook_has_mirror_pairs_and_a_symmetric_whitening(whiten):
    codebook = symmetric_codebook(words=12, whiten=whiten)
    flip = mirror_permutation(5)
    assert codebook.symmetric and codebook.centroids.shape == (12, 75)
    np.testing.assert_array_equal(codebook.centroids[6:], codebook.centroids[:6, flip])
    if whiten:
        np.testing.assert_array_equal(codebook.whiten_mean[flip], codebook.whiten_mean)
        np.testing.assert_array_equal(codebook.whiten_matrix[flip][:, flip], codebook.whiten_matrix)
    assert codebook.is_mirror_symmetric()
    plain = fit_codebook(images(60), words=12, patch=5, whiten=whiten, samples=3000, iterations=4)
    assert not plain.is_mirror_symmetric()  # an ordinary codebook is not, so the check can fail


def test_the_symmetric_whitening_is_the_zca_of_the_patches_and_their_mirrors():
    P = normalize_patches(sample_patches(images(50), 4, 4000, np.random.default_rng(1)))
    flip = mirror_permutation(4)
    mean, W = fit_whitening(P, flip)
    ref_mean, ref_W = fit_whitening(np.concatenate([P, P[:, flip]]))
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    np.testing.assert_allclose(W, ref_W, rtol=1e-4, atol=1e-4)


def loop_pair_kmeans(P, base, flip, iterations):
    """k-means on words [base, base mirrored], one point at a time in float64: a point nearest
    to the mirror of word j joins word j mirrored."""
    P, B = P.astype(np.float64), base.astype(np.float64).copy()
    for _ in range(iterations):
        sums, counts = np.zeros_like(B), np.zeros(len(B))
        for x in P:
            words = np.concatenate([B, B[:, flip]])
            j = int(np.argmin([np.sum((x - c) ** 2) for c in words]))
            if j < len(B):
                sums[j] += x
            else:
                sums[j - len(B)] += x[flip]
            counts[j % len(B)] += 1
        B[counts > 0] = sums[counts > 0] / counts[counts > 0, None]
    return np.concatenate([B, B[:, flip]])


def test_pair_kmeans_equals_the_point_by_point_loop():
    rng = np.random.default_rng(4)
    P = rng.normal(size=(150, 12)).astype(np.float32)
    P[:50] += 3  # clusters, so that some words attract mirrored points and some none
    flip = mirror_permutation(2)  # 12 = 3 channels of 2 x 2
    start = P[[0, 60, 100]]
    got = kmeans(P, start, 3, flip)
    np.testing.assert_allclose(got, loop_pair_kmeans(P, start, flip, 3), rtol=1e-5, atol=1e-5)
    assert got.shape == (6, 12)


def test_odd_words_and_false_claims_are_refused():
    with pytest.raises(ArgumentError, match="odd number"):
        fit_codebook(images(20), words=7, patch=5, samples=2000, iterations=1, symmetric=True)
    plain = fit_codebook(images(20), words=8, patch=5, samples=2000, iterations=1)
    with pytest.raises(ArgumentError, match="mirror pairs"):
        Codebook.from_state(plain.state(), patch=5, words=8, whiten=True, symmetric=True)
    sym = symmetric_codebook(words=8)
    restored = Codebook.from_state(sym.state(), patch=5, words=8, whiten=True, symmetric=True)
    assert restored.symmetric and restored.digest() == sym.digest() != plain.digest()
    # a stored codebook one entry off its pair is not taken for symmetric
    state = sym.state()
    state["whiten_matrix"] = state["whiten_matrix"].copy()
    state["whiten_matrix"][0, 1] += 1e-3
    with pytest.raises(ArgumentError, match="mirror pairs"):
        Codebook.from_state(state, patch=5, words=8, whiten=True, symmetric=True)


# ------------------------------------------------------------------ one pass for an image and its mirror


@pytest.mark.parametrize("encoding", ["triangle", "hard"])
@pytest.mark.parametrize("pooling", ["quadrants", "image"])
@pytest.mark.parametrize("patch, stride, side, one_pass", [(5, 1, 32, True), (6, 1, 32, True), (6, 2, 32, True),
                                                         (5, 2, 16, False), (4, 3, 13, True)])
def test_the_mirrors_codes_equal_those_of_mirrors_encoded_alone(encoding, pooling, patch, stride, side, one_pass):
    codebook = symmetric_codebook(words=10, patch=patch, side=side)
    X = images(9, side, seed=5)
    X[2] = 200  # a flat image
    encoder = Encoder(codebook, stride, encoding, pooling, batch=4, side=side, threads=2)
    # (16 - 5) % 2: that grid does not mirror onto itself; hard codes of a pair's tie cannot be mirrored
    assert (encoder.mirror_words is not None) == (one_pass and encoding == "triangle")
    mirrored = np.empty((len(X), encoder.output_dim), dtype=np.float32)
    got = encoder(X.reshape(-1, 3, side, side), mirrored_out=mirrored)
    alone = encoder(X.reshape(-1, 3, side, side))
    expected = encoder(mirrored_by_loop(X, side).reshape(-1, 3, side, side))
    # sums over other parts in another order: a float32 rounding apart (codes are around 0.05)
    np.testing.assert_allclose(got, alone, rtol=1e-4, atol=5e-5)
    np.testing.assert_allclose(mirrored, expected, rtol=1e-4, atol=5e-5)
    assert not np.allclose(mirrored, got)  # random images are not their own mirrors


def test_a_plain_codebook_encodes_the_mirrors_themselves():
    codebook = fit_codebook(images(40), words=6, patch=5, samples=2000, iterations=2)
    encoder = Encoder(codebook)
    assert encoder.mirror_words is None
    X = images(4, seed=2)
    mirrored = np.empty((4, encoder.output_dim), dtype=np.float32)
    encoder(X.reshape(-1, 3, 32, 32), mirrored_out=mirrored)
    np.testing.assert_array_equal(mirrored, encoder(mirrored_by_loop(X).reshape(-1, 3, 32, 32)))
    for bad in (np.empty((4, 3), dtype=np.float32), np.empty((4, encoder.output_dim), dtype=np.float64)):
        with pytest.raises(ArgumentError, match="mirrored_out"):  # misshapen, or not float32
            encoder(X.reshape(-1, 3, 32, 32), mirrored_out=bad)


TRANSFORMS = ["raw", {"type": "hog", "cell": 8}, {"type": "hog", "cell": 4}, {"type": "color_hist", "bins": 6},
              {"type": "color_hist", "space": "rgb", "bins": 4}]


@pytest.mark.parametrize("symmetric", [True, False])
def test_extract_features_gives_every_transform_of_the_mirrors(symmetric):
    bow = {"type": "bow", "words": 10, "patch": 5, "samples": 3000, "iterations": 4, "symmetric": symmetric}
    transforms = normalize_transforms([*TRANSFORMS, bow])
    X = images(70, seed=6)
    codebook = fit_codebook(images(60), words=10, patch=5, samples=3000, iterations=4, symmetric=symmetric)
    codebooks = [None] * len(TRANSFORMS) + [codebook]
    mirrored = np.empty((70, 3072 + 16 * 9 + 64 * 9 + 6 + 12 + 40), dtype=np.float32)
    got = extract_features(X, transforms, chunk=32, progress=False, codebooks=codebooks, mirrored_out=mirrored)
    np.testing.assert_allclose(got, extract_features(X, transforms, progress=False, codebooks=codebooks),
                               rtol=1e-4, atol=5e-5)
    expected = extract_features(mirrored_by_loop(X), transforms, progress=False, codebooks=codebooks)
    np.testing.assert_array_equal(mirrored[:, :-40], expected[:, :-40])  # pixels, HOG, histograms: exactly
    np.testing.assert_allclose(mirrored[:, -40:], expected[:, -40:], rtol=1e-4, atol=5e-5)


def test_points_have_no_mirrors():
    with pytest.raises(ArgumentError, match="no mirror"):
        extract_features(np.zeros((3, 2)), ["polar"], mirrored_out=np.empty((3, 2), dtype=np.float32))


# ------------------------------------------------------------------ the caches


def test_both_files_are_written_in_one_pass_and_each_is_the_mirrors_own(tmp_path):
    transforms = normalize_transforms(["hog", {"type": "bow", "words": 8, "patch": 5, "symmetric": True}])
    codebooks = [None, symmetric_codebook(words=8)]
    X = images(30, seed=7)
    M = mirrored_by_loop(X)
    mirrored = np.empty((30, 144 + 32), dtype=np.float32)
    got = cached_features(X, transforms, tmp_path, "images", progress=False, codebooks=codebooks,
                          mirrored_out=mirrored, mirrored_fingerprint="mirrors")
    for fingerprint, values in (("images", got), ("mirrors", mirrored)):
        path = cache_path(tmp_path, fingerprint, transforms, codebooks)
        np.testing.assert_array_equal(np.load(path), values)
    # the mirrors' file is the one a run that extracts the mirrored rows alone reads
    alone = cached_features(M, transforms, tmp_path, "mirrors", progress=False, codebooks=codebooks)
    np.testing.assert_array_equal(alone, mirrored)
    np.testing.assert_allclose(alone, extract_features(M, transforms, progress=False, codebooks=codebooks),
                               rtol=1e-4, atol=5e-5)
    assert not list(tmp_path.glob("*.lock"))


def test_a_missing_mirrors_file_is_made_from_the_mirrored_rows(tmp_path):
    transforms = normalize_transforms([{"type": "color_hist", "bins": 5}, {"type": "hog", "cell": 16}])
    X = images(12, seed=8)
    first = cached_features(X, transforms, tmp_path, "images", progress=False)
    (tmp_path / "junk").write_text("")  # an unrelated file stays
    mirrored = np.empty_like(first)
    cached_features(X, transforms, tmp_path, "images", progress=False, mirrored_out=mirrored,
                    mirrored_fingerprint="mirrors")
    np.testing.assert_array_equal(mirrored, extract_features(mirrored_by_loop(X), transforms, progress=False))
    assert cache_path(tmp_path, "mirrors", transforms).exists()
    # a damaged mirrors file is reported and made again
    cache_path(tmp_path, "mirrors", transforms).write_bytes(b"not a npy file")
    warnings = []
    again = np.zeros_like(first)
    cached_features(X, transforms, tmp_path, "images", progress=False, log=warnings.append, mirrored_out=again,
                    mirrored_fingerprint="mirrors")
    np.testing.assert_array_equal(again, mirrored)
    assert len(warnings) == 1 and "unusable" in warnings[0]


def test_the_keys_of_existing_caches_do_not_change():
    # Written down from the code before `symmetric` existed: caches and codebooks of
    # configs without it are still found.
    t = [{"type": "bow", "words": 8, "patch": 5}, "hog"]
    assert cache_key("fp", t) == "49c0e131154b7ddaf7937ac780731ff3a5f011222a6c6a54a6bd30bc3b965a33"
    assert codebook_path("/x", "fp", normalize_transforms(t)[0]).name == "codebook-55531992a7a79a892be21fb4.npz"
    symmetric = [{"type": "bow", "words": 8, "patch": 5, "symmetric": True}, "hog"]
    assert cache_key("fp", symmetric) != cache_key("fp", t)
    assert codebook_path("/x", "fp", normalize_transforms(symmetric)[0]) != \
        codebook_path("/x", "fp", normalize_transforms(t)[0])


def test_a_checkpoint_keeps_the_symmetric_codebook():
    from cs_nets.data.preprocess import Normalizer

    transforms = normalize_transforms([{"type": "bow", "words": 8, "patch": 5, "symmetric": True}])
    inputs = InputPipeline(transforms, Normalizer("mean_std"), {0: symmetric_codebook(words=8)})
    X = images(10, seed=9)
    inputs.fit(inputs.extract(X, None, progress=False))
    restored = InputPipeline.from_state(inputs.config(), inputs.state())
    assert restored.codebooks[0].symmetric
    np.testing.assert_array_equal(restored.extract(X, None, progress=False), inputs.extract(X, None, progress=False))
    plain = InputPipeline(normalize_transforms([{"type": "bow", "words": 8, "patch": 5}]), Normalizer("mean_std"),
                          {0: fit_codebook(images(20), words=8, patch=5, samples=2000, iterations=1)})
    plain.fit(plain.extract(X, None, progress=False))
    with pytest.raises(ArgumentError, match="mirror pairs"):  # a checkpoint that claims what its arrays are not
        InputPipeline.from_state({**plain.config(), "features": transforms}, plain.state())
