"""Tests for cs_nets.features: HOG, color histograms, extraction, cache, config."""

import hashlib
import math
from fractions import Fraction

import numpy as np
import pytest

import cs_nets.features.cache as cache_module
from cs_nets.errors import ArgumentError, ConfigError, DataError
from cs_nets.features import (
    FEATURE_TYPES,
    cache_path,
    cached_features,
    color_histogram,
    extract_features,
    feature_dim,
    hog_features,
    normalize_transforms,
)


def random_images(n, seed=0, side=32):
    """(n, 3, side, side) uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)


def step_image(axis):
    """(1, 32, 32) float: 0 then 1, the step across columns (axis=1) or rows (axis=0)."""
    img = np.zeros((32, 32), dtype=np.float32)
    if axis == 1:
        img[:, 16:] = 1.0  # vertical edge
    else:
        img[16:, :] = 1.0  # horizontal edge
    return img[None]


# ---------------------------------------------------------------- HOG, known structure


def test_hog_vertical_edge_votes_only_in_the_0_degree_bin():
    hist = hog_features(step_image(axis=1), cell=8, bins=9).reshape(4, 4, 9)
    # Columns 15 and 16 have gx = 1 (cells 1 and 2 in x): 8 pixels of magnitude 1
    # per 64-pixel cell -> sqrt(8 / 64).
    expected = np.zeros((4, 4, 9), dtype=np.float32)
    expected[:, 1:3, 0] = math.sqrt(8 / 64)
    np.testing.assert_allclose(hist, expected, atol=1e-7)


def test_hog_horizontal_edge_votes_in_the_90_degree_bin():
    hist = hog_features(step_image(axis=0), cell=8, bins=6).reshape(4, 4, 6)
    expected = np.zeros((4, 4, 6), dtype=np.float32)
    expected[1:3, :, 3] = math.sqrt(8 / 64)  # bin 3 is centred on 3 * 30 = 90 degrees
    np.testing.assert_allclose(hist, expected, atol=1e-7)


def test_hog_90_degrees_splits_evenly_between_neighbours_with_9_bins():
    hist = hog_features(step_image(axis=0), cell=8, bins=9).reshape(4, 4, 9)
    # 90 is halfway between the centres 80 (bin 4) and 100 (bin 5).
    np.testing.assert_allclose(hist[1, 0, 4:6], [math.sqrt(4 / 64)] * 2, atol=1e-7)
    assert hist[1, 0].sum() == pytest.approx(2 * math.sqrt(4 / 64))


@pytest.mark.parametrize("sign, expected_bin", [(1, 1), (-1, 3)])
def test_hog_diagonal_ramp_orientation_follows_rows_going_down(sign, expected_bin):
    r, c = np.mgrid[0:32, 0:32].astype(np.float32)
    ramp = (c + sign * r)[None] / 64  # gx = 2/64, gy = sign * 2/64: 45 or 135 degrees
    hist = hog_features(ramp, cell=8, bins=4).reshape(4, 4, 4)
    inner = hist[1:3, 1:3]  # these cells touch no border pixel
    expected = np.zeros((2, 2, 4), dtype=np.float32)
    expected[..., expected_bin] = math.sqrt(math.hypot(2, 2) / 64)
    np.testing.assert_allclose(inner, expected, atol=1e-6)


def test_hog_flat_image_is_all_zeros():
    flat = np.full((2, 3, 32, 32), 123, dtype=np.uint8)
    assert np.array_equal(hog_features(flat), np.zeros((2, 144), dtype=np.float32))


def test_hog_uint8_rgb_equals_grayscale_input():
    white_right = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    white_right[..., 16:] = 255
    np.testing.assert_allclose(hog_features(white_right), hog_features(step_image(axis=1)), atol=1e-6)


@pytest.mark.parametrize("cell", [4, 8, 16, 5])
@pytest.mark.parametrize("bins", [6, 9, 12])
def test_hog_shape(cell, bins):
    out = hog_features(random_images(3), cell=cell, bins=bins)
    assert out.shape == (3, (32 // cell) ** 2 * bins)
    assert out.dtype == np.float32
    assert out.shape[1] == feature_dim([{"type": "hog", "cell": cell, "bins": bins}])


def reference_hog(rgb, cell, bins):
    """Per-pixel loop version of the module's HOG definition, in float64."""
    gray = (0.299 * rgb[0].astype(float) + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    height, width = gray.shape

    def pixel(r, c):  # replicated border
        return gray[min(max(r, 0), height - 1), min(max(c, 0), width - 1)]

    rows, cols = height // cell, width // cell
    hist = np.zeros((rows, cols, bins))
    for r in range(rows * cell):
        for c in range(cols * cell):
            gx = pixel(r, c + 1) - pixel(r, c - 1)
            gy = pixel(r + 1, c) - pixel(r - 1, c)
            magnitude = math.hypot(gx, gy)
            position = (math.degrees(math.atan2(gy, gx)) % 180.0) / (180.0 / bins)
            k = math.floor(position)
            frac = position - k
            hist[r // cell, c // cell, k % bins] += magnitude * (1 - frac)
            hist[r // cell, c // cell, (k + 1) % bins] += magnitude * frac
    return np.sqrt(hist / cell**2).ravel()


@pytest.mark.parametrize("side, cell, bins", [(32, 8, 9), (32, 4, 7), (32, 5, 9), (24, 6, 9), (24, 8, 5), (40, 8, 9)])
def test_hog_matches_per_pixel_loop_reference(side, cell, bins):
    images = random_images(3, seed=cell, side=side)
    # Smooth one image so small gradients and all orientations are exercised too.
    images[1] = (images[1].astype(np.uint16) + np.roll(images[1], 1, axis=1) + np.roll(images[1], 1, axis=2)) // 3
    got = hog_features(images, cell=cell, bins=bins)
    assert got.shape == (3, (side // cell) ** 2 * bins) == (3, feature_dim([{"type": "hog", "cell": cell,
                                                                            "bins": bins}], (side, side, 3)))
    for i in range(3):
        np.testing.assert_allclose(got[i], reference_hog(images[i], cell, bins), atol=1e-5, rtol=0)


def test_hog_rejects_wrong_input():
    with pytest.raises(ValueError, match="images"):
        hog_features(np.zeros((2, 32, 32, 3), dtype=np.uint8))


# ------------------------------------------------------------------- color histogram


def exact_hue(r, g, b):
    """colorsys.rgb_to_hsv's hue as an exact fraction (gray -> 0)."""
    hi = max(r, g, b)
    delta = hi - min(r, g, b)
    if delta == 0:
        return Fraction(0)
    if hi == r:
        h = Fraction(g - b, delta)
    elif hi == g:
        h = 2 + Fraction(b - r, delta)
    else:
        h = 4 + Fraction(r - g, delta)
    return (h / 6) % 1


@pytest.mark.parametrize("bins, side", [(10, 32), (16, 32), (10, 24), (16, 40)])
def test_hue_histogram_sums_to_one_and_matches_exact_hue(bins, side):
    images = random_images(4, seed=bins, side=side)
    hist = color_histogram(images, bins=bins, space="hsv")
    assert hist.shape == (4, bins) and hist.dtype == np.float32
    np.testing.assert_allclose(hist.sum(axis=1), 1.0, atol=1e-6)
    for n in range(4):
        counts = np.zeros(bins)
        for r, g, b in images[n].reshape(3, -1).T.tolist():
            counts[int(exact_hue(r, g, b) * bins)] += 1
        np.testing.assert_allclose(hist[n], counts / side**2, atol=1e-7)


@pytest.mark.parametrize(
    "rgb, expected_bin",
    [((255, 0, 0), 0), ((255, 255, 0), 1), ((0, 200, 0), 2), ((0, 0, 9), 4), ((255, 0, 255), 5), ((77, 77, 77), 0)],
)
def test_hue_histogram_of_solid_colors(rgb, expected_bin):
    image = np.broadcast_to(np.array(rgb, dtype=np.uint8)[None, :, None, None], (1, 3, 32, 32))
    expected = np.zeros((1, 6), dtype=np.float32)
    expected[0, expected_bin] = 1.0  # yellow is exactly 1/6: bin 1, not bin 0
    assert np.array_equal(color_histogram(np.ascontiguousarray(image), bins=6), expected)


@pytest.mark.parametrize("side", [32, 24, 40])
def test_rgb_histogram_is_per_channel_and_each_channel_sums_to_one(side):
    images = random_images(3, seed=7, side=side)
    hist = color_histogram(images, bins=8, space="rgb")
    assert hist.shape == (3, 24)
    np.testing.assert_allclose(hist.reshape(3, 3, 8).sum(axis=2), 1.0, atol=1e-6)
    expected = np.stack([np.bincount(images[1, ch].ravel() // 32, minlength=8) / side**2 for ch in range(3)])
    np.testing.assert_allclose(hist[1], expected.ravel(), atol=1e-7)


def test_rgb_histogram_extreme_values_land_in_first_and_last_bins():
    image = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    image[0, 0] = 255  # red saturated, green and blue zero
    hist = color_histogram(image, bins=10, space="rgb").reshape(3, 10)
    assert hist[0, 9] == 1.0 and hist[1, 0] == 1.0 and hist[2, 0] == 1.0


# ------------------------------------------------------------------------ extraction


def test_extract_concatenates_transforms_in_order():
    images = random_images(5, seed=3)
    X = images.reshape(5, -1)
    spec = ["hog", {"type": "color_hist", "space": "rgb", "bins": 4}, "raw"]
    got = extract_features(X, spec, progress=False)
    assert got.shape == (5, 144 + 12 + 3072) == (5, feature_dim(spec))
    np.testing.assert_array_equal(got[:, :144], hog_features(images))
    np.testing.assert_array_equal(got[:, 144:156], color_histogram(images, bins=4, space="rgb"))
    np.testing.assert_allclose(got[:, 156:], X / 255.0, atol=1e-7)  # CIFAR order kept
    assert got[0, 156 + 1024] == pytest.approx(images[0, 1, 0, 0] / 255)  # first green pixel


@pytest.mark.parametrize("side", [24, 40])
def test_extract_reads_rows_of_any_square_size(side):
    images = random_images(5, seed=side, side=side)
    X = images.reshape(5, -1)  # (5, 3 S S) CIFAR-order rows
    spec = [{"type": "hog", "cell": 8}, {"type": "color_hist", "space": "rgb", "bins": 4}, "color_hist", "raw"]
    got = extract_features(X, spec, chunk=2, progress=False, image_size=side)
    cells = (side // 8) ** 2 * 9
    assert got.shape == (5, cells + 12 + 10 + 3 * side * side) == (5, feature_dim(spec, (side, side, 3)))
    np.testing.assert_array_equal(got[:, :cells], hog_features(images))
    np.testing.assert_array_equal(got[:, cells:cells + 12], color_histogram(images, bins=4, space="rgb"))
    np.testing.assert_array_equal(got[:, cells + 12:cells + 22], color_histogram(images))
    np.testing.assert_allclose(got[:, cells + 22:], X / 255.0, atol=1e-7)
    assert got[0, cells + 22 + side * side] == pytest.approx(images[0, 1, 0, 0] / 255)  # first green pixel
    with pytest.raises(DataError, match=rf"expected \(N, {3 * side * side}\) uint8 CIFAR rows of {side}x{side}"):
        extract_features(random_images(2).reshape(2, -1), spec, progress=False, image_size=side)


def test_features_of_32x32_images_are_those_of_mains_code_path():
    """The digest of hog, colour and raw features of fixed rows, computed with the code before image sizes
    (issue 20): passing the side through changed no value at 32, the default."""
    X = np.random.default_rng(11).integers(0, 256, size=(6, 3072), dtype=np.uint8)
    spec = [{"type": "hog", "cell": 4, "bins": 7}, {"type": "color_hist", "space": "rgb", "bins": 5}, "color_hist",
            "raw"]
    got = extract_features(X, spec, progress=False)
    np.testing.assert_array_equal(got, extract_features(X, spec, progress=False, image_size=32))
    assert hashlib.sha256(got.tobytes()).hexdigest() == \
        "d95900df0be3276a9000e4bb7f605778ab6455eb7f22780dc818af6901a77a16"


def test_extract_does_not_depend_on_chunk_size():
    X = random_images(10, seed=4).reshape(10, -1)
    spec = [{"type": "hog", "cell": 4}, "color_hist"]
    np.testing.assert_array_equal(
        extract_features(X, spec, chunk=3, progress=False), extract_features(X, spec, chunk=1000, progress=False)
    )


def test_extract_progress_bar_is_hidden_when_stderr_is_not_a_terminal(capsys):
    extract_features(random_images(2).reshape(2, -1), ["color_hist"], progress=True)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "X", [np.zeros((2, 3072), dtype=np.float32), np.zeros((2, 3, 32, 32), dtype=np.uint8), [[0] * 3072]]
)
def test_extract_rejects_non_cifar_rows(X):
    with pytest.raises(DataError, match="3072"):
        extract_features(X, ["hog"], progress=False)


# ----------------------------------------------------------------------------- cache


@pytest.fixture
def X():
    return random_images(6, seed=5).reshape(6, -1)


SPEC = ["hog", "color_hist"]


def test_cache_hit_does_not_recompute(tmp_path, X, monkeypatch):
    first = cached_features(X, SPEC, tmp_path, "train-abc", progress=False)
    path = cache_path(tmp_path, "train-abc", SPEC)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left

    def fail(*args, **kwargs):
        raise AssertionError("features recomputed on a cache hit")

    monkeypatch.setattr(cache_module, "extract_features", fail)
    again = cached_features(X, [{"type": "hog", "cell": 8, "bins": 9}, "color_hist"], tmp_path, "train-abc")
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.float32 and again.shape == (6, 154)


def test_caches_of_other_image_sizes_never_mix(tmp_path):
    X24 = random_images(6, seed=5, side=24).reshape(6, -1)
    spec = [{"type": "hog", "cell": 6}, "color_hist"]
    paths = {size: cache_path(tmp_path, "fp", spec, image_size=size) for size in (24, 32, 48)}
    assert len(set(paths.values())) == 3
    # The key of 32x32 images is the one caches written before image sizes have (main's code gave this
    # name): they are still read.
    assert paths[32].name == cache_path(tmp_path, "fp", spec).name == "features-4dbf5bab274195bbe04182ff.npy"
    got = cached_features(X24, spec, tmp_path, "fp", progress=False, image_size=24)
    assert [p.name for p in tmp_path.iterdir()] == [paths[24].name]
    np.testing.assert_array_equal(got, extract_features(X24, spec, progress=False, image_size=24))
    assert got.shape == (6, 16 * 9 + 10)


def test_cache_miss_for_other_transforms_or_fingerprint(tmp_path, X):
    a = cached_features(X, SPEC, tmp_path, "train-abc", progress=False)
    b = cached_features(X, ["hog"], tmp_path, "train-abc", progress=False)
    cached_features(X, SPEC, tmp_path, "test-abc", progress=False)
    assert len(list(tmp_path.glob("features-*.npy"))) == 3
    assert b.shape == (6, 144)
    np.testing.assert_array_equal(a[:, :144], b)
    assert cache_path(tmp_path, "x", ["hog"]) != cache_path(tmp_path, "x", [{"type": "hog", "bins": 8}])


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda path: path.write_bytes(b"not a numpy file at all"),
        lambda path: path.write_bytes(path.read_bytes()[:200]),  # truncated
        lambda path: np.save(path, np.zeros((6, 10), dtype=np.float32)),  # wrong shape
        lambda path: np.save(path, np.zeros((6, 154), dtype=np.float64)),  # wrong dtype
        lambda path: np.save(path, np.zeros((6, 154), dtype=">f4")),  # big-endian: other bytes
        lambda path: np.save(path, np.asfortranarray(np.load(path))),  # column-major: other order
        lambda path: path.write_bytes(path.read_bytes() + b"\0" * 4),  # bytes after the array
    ],
)
def test_corrupt_cache_is_recomputed_with_a_warning(tmp_path, X, corrupt):
    expected = extract_features(X, SPEC, progress=False)
    cached_features(X, SPEC, tmp_path, "fp", progress=False)
    path = cache_path(tmp_path, "fp", SPEC)
    corrupt(path)
    messages = []
    got = cached_features(X, SPEC, tmp_path, "fp", progress=False, log=messages.append)
    np.testing.assert_array_equal(got, expected)
    assert len(messages) == 1 and "recomputing" in messages[0] and str(path) in messages[0]
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), expected)  # rewritten


def test_cache_reads_and_extracts_into_the_rows_it_is_given(tmp_path, X):
    expected = extract_features(X, SPEC, progress=False)
    for _ in ("extracted", "read from the cache"):
        whole = np.full((len(X) + 2, 154), -7.0, dtype=np.float32)
        got = cached_features(X, SPEC, tmp_path, "fp", progress=False, out=whole[1:-1])
        assert np.shares_memory(got, whole)
        np.testing.assert_array_equal(whole[1:-1], expected)
        assert (whole[[0, -1]] == -7).all()  # the rows around are untouched
    for bad in (np.empty((6, 153), np.float32), np.empty((6, 154), np.float64), np.empty((6, 308), np.float32)[:, ::2]):
        with pytest.raises(ArgumentError, match=r"out: expected a C-contiguous \(6, 154\) float32 array"):
            cached_features(X, SPEC, tmp_path, "fp", progress=False, out=bad)


def test_corrupt_cache_without_log_uses_warnings(tmp_path, X):
    path = cache_path(tmp_path, "fp", SPEC)
    path.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="unusable"):
        got = cached_features(X, SPEC, tmp_path, "fp", progress=False)
    assert got.shape == (6, 154)


def test_cache_write_failure_is_reported_not_raised(tmp_path, X):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    messages = []
    got = cached_features(X, SPEC, blocker, "fp", progress=False, log=messages.append)
    assert got.shape == (6, 154) and len(messages) == 1 and "could not write" in messages[0]


# ---------------------------------------------------------------------------- config


def test_normalize_fills_defaults_and_accepts_type_names():
    assert normalize_transforms(["hog", {"type": "color_hist", "bins": 16}, {"type": "raw"}]) == [
        {"type": "hog", "cell": 8, "bins": 9, "weight": 1.0},
        {"type": "color_hist", "bins": 16, "space": "hsv", "weight": 1.0},
        {"type": "raw", "weight": 1.0},
    ]
    normalized = normalize_transforms([{"type": "color_hist", "space": "rgb"}])
    assert normalize_transforms(normalized) == normalized == [{"type": "color_hist", "bins": 10, "space": "rgb",
                                                                             "weight": 1.0}]
    assert FEATURE_TYPES == ("raw", "hog", "color_hist", "bow", "polar")


def test_feature_dim():
    assert feature_dim(["hog", "color_hist"]) == 154
    assert feature_dim(["raw"]) == 3072
    assert feature_dim([{"type": "color_hist", "space": "rgb", "bins": 16}]) == 48
    assert feature_dim([{"type": "hog", "cell": 4, "bins": 12}], image_shape=(16, 16, 3)) == 16 * 12


@pytest.mark.parametrize(
    "spec, match",
    [
        ([], r"^features: got \[\], expected a non-empty list"),
        ("hog", r"^features: got 'hog'"),
        (["hog", {"type": "sift"}], r"^features\[1\]\.type: got 'sift', expected one of: raw, hog, color_hist, bow, polar$"),
        ([{"cell": 8}], r"^features\[0\]\.type: got None"),
        ([{"type": "hog", "size": 8}], r"^features\[0\]\.size: unknown key for type 'hog', valid keys: type, cell, bins, weight$"),
        ([{"type": "raw", "bins": 3}], r"^features\[0\]\.bins: unknown key for type 'raw', valid keys: type, weight$"),
        ([{"type": "hog", "cell": 0}], r"^features\[0\]\.cell: got 0, expected an integer from 1 to 32$"),
        ([{"type": "hog", "cell": "8"}], r"^features\[0\]\.cell: got '8'"),
        ([{"type": "hog", "bins": True}], r"^features\[0\]\.bins: got True"),
        ([{"type": "color_hist", "bins": 2.5}], r"^features\[0\]\.bins: got 2\.5, expected an integer from 1 to 256$"),
        (["raw", {"type": "color_hist", "space": "lab"}], r"^features\[1\]\.space: got 'lab', expected one of: hsv, rgb$"),
        ([3], r"^features\[0\]: got 3, expected a mapping"),
        ([{"type": "hog", "weight": 0}], r"^features\[0\]\.weight: got 0, expected a number above 0 and at most 1000$"),
        ([{"type": "hog", "weight": -2.0}], r"^features\[0\]\.weight: got -2\.0"),
        ([{"type": "hog", "weight": float("nan")}], r"^features\[0\]\.weight: got nan"),
        ([{"type": "hog", "weight": 1e4}], r"^features\[0\]\.weight: got 10000\.0"),
        ([{"type": "hog", "weight": True}], r"^features\[0\]\.weight: got True"),
        ([{"type": "hog", "weight": "3"}], r"^features\[0\]\.weight: got '3'"),
    ],
)
def test_normalize_rejects_bad_config(spec, match):
    with pytest.raises(ConfigError, match=match):
        normalize_transforms(spec)


def test_feature_dim_rejects_cell_larger_than_image():
    with pytest.raises(ConfigError, match=r"features\[0\]\.cell: got 16, expected at most 8"):
        feature_dim([{"type": "hog", "cell": 16}], image_shape=(8, 8, 3))


def test_point_features_fill_the_rows_they_are_given():
    points = np.random.default_rng(0).normal(size=(5, 2))
    out = np.full((5, 2), np.nan, dtype=np.float32)
    assert extract_features(points, ["polar"], out=out) is out
    np.testing.assert_allclose(out, extract_features(points, ["polar"]), rtol=1e-6)
    with pytest.raises(ArgumentError, match=r"out: expected a C-contiguous \(5, 2\) float32 array"):
        extract_features(points, ["polar"], out=np.empty((5, 3), np.float32))
