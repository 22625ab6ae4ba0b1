"""Test-time views (cs_nets.features.views): images mirrored and moved, and their features.

The moved images are held to images moved pixel by pixel; a moved view's bag of words to
codes computed patch by patch on the moved image, pooled over the patches it holds whole.
"""

import numpy as np
import pytest
from bow_loops import loop_code_map, loop_pool
from mirrors import viewed_by_loop

from cs_nets.errors import ArgumentError
from cs_nets.features import Encoder, extract_features, extract_views, fit_codebook
from cs_nets.features.views import MIRROR, ORIGINAL, View, averaged_views, view_images


def images(n, side=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)


def test_the_views_come_in_order_the_image_first():
    assert averaged_views() == [ORIGINAL]
    assert averaged_views(0, mirrors=True) == [ORIGINAL, MIRROR]
    assert averaged_views(2) == [View(0, 0), View(0, 2), View(0, -2), View(2, 0), View(-2, 0)]
    views = averaged_views(3, mirrors=True)
    assert len(views) == 10 and views[:2] == [ORIGINAL, MIRROR] and len(set(views)) == 10
    assert [v for v in views if v.mirrored] == [View(dy, dx, True) for dy, dx, _ in views[::2]]


@pytest.mark.parametrize("view", [ORIGINAL, MIRROR, View(0, 2), View(-3, 0, True), View(1, -2), View(5, 4, True)])
def test_view_images_equal_images_moved_pixel_by_pixel(view):
    X = images(3, side=9)
    got = view_images(X.reshape(-1, 3, 9, 9), view)
    np.testing.assert_array_equal(got.reshape(3, -1), viewed_by_loop(X, view, side=9))


def test_a_move_as_large_as_the_image_is_refused():
    with pytest.raises(ArgumentError, match="leaves nothing"):
        view_images(images(1, side=4).reshape(-1, 3, 4, 4), View(0, 4))


def loop_view_codes(row, codebook, stride, encoding, pooling, view, side):
    """A view's bag of words the slow way: every patch of the moved image coded on its own, then
    pooled over the patches that lie wholly inside the moved image (none of its repeated edge)."""
    moved = viewed_by_loop(row[None], view, side)[0].reshape(3, side, side)
    codes = loop_code_map(moved, codebook, stride, encoding)
    p, first = codebook.patch, stride * np.arange(len(codes))  # each position's first row (or column)
    rows_inside = (first - view.dy >= 0) & (first + p - 1 - view.dy <= side - 1)
    columns_inside = (first - view.dx >= 0) & (first + p - 1 - view.dx <= side - 1)
    return loop_pool(codes, pooling, rows_inside[:, None] & columns_inside[None, :])


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("encoding", ["triangle", "hard"])
@pytest.mark.parametrize("pooling", ["quadrants", "image"])
@pytest.mark.parametrize("stride, side, shift", [(1, 14, 2), pytest.param(2, 15, 4, marks=pytest.mark.slow)])
def test_moved_views_codes_equal_the_patch_by_patch_codes_of_moved_images(symmetric, encoding, pooling, stride,
                                                                          side, shift):
    words = 8
    codebook = fit_codebook(images(30, side), words=words, patch=5, samples=1500, iterations=3, side=side,
                            symmetric=symmetric)
    X = images(2, side, seed=4)
    X[1] = 90  # a flat image
    encoder = Encoder(codebook, stride, encoding, pooling, batch=2, side=side, threads=2)
    assert (encoder.mirror_words is not None) == (symmetric and encoding == "triangle")  # one code map, or two
    views = averaged_views(shift, mirrors=True) + [View(shift, -shift, True)]
    got = encoder.encode_views(X.reshape(-1, 3, side, side), views)
    for view, codes in zip(views, got):
        expected = np.stack([loop_view_codes(row, codebook, stride, encoding, pooling, view, side) for row in X])
        np.testing.assert_allclose(codes, expected, rtol=1e-4, atol=5e-5, err_msg=str(view))
    assert not np.allclose(got[2], got[0], atol=1e-3)  # a move changes the codes


def test_encode_views_writes_into_the_arrays_given_and_refuses_misshapen_ones():
    codebook = fit_codebook(images(30), words=6, patch=5, samples=1500, iterations=2)
    encoder = Encoder(codebook)
    X = images(4, seed=1).reshape(-1, 3, 32, 32)
    wide = np.zeros((4, 3 * encoder.output_dim), dtype=np.float32)  # columns of a larger array will do
    blocks = [wide[:, i * encoder.output_dim:(i + 1) * encoder.output_dim] for i in range(3)]
    views = [ORIGINAL, View(0, 2), View(-2, 0, True)]
    assert all(a is b for a, b in zip(encoder.encode_views(X, views, blocks), blocks))
    for view, block in zip(views, blocks):
        np.testing.assert_array_equal(block, encoder.encode_views(X, [view])[0])
    np.testing.assert_array_equal(blocks[0], encoder(X))
    with pytest.raises(ArgumentError, match=r"outs\[1\]"):
        encoder.encode_views(X, views, [None, np.zeros((4, 5), np.float32), None])
    with pytest.raises(ArgumentError, match="multiple of the bag of words' stride"):
        Encoder(codebook, stride=2).encode_views(X, [View(0, 1)])
    with pytest.raises(ArgumentError, match="keeps no patch"):
        encoder.encode_views(X, [View(0, 14)])


@pytest.mark.parametrize("symmetric", [True, False])
def test_extract_views_equal_each_transform_of_the_moved_images(symmetric):
    X = images(5, seed=3)
    transforms = ["raw", "hog", {"type": "color_hist", "bins": 6}]
    views = averaged_views(2, mirrors=True)
    got = extract_views(X, transforms, views, chunk=2, progress=False)
    for view, rows in zip(views, got):
        np.testing.assert_allclose(rows, extract_features(viewed_by_loop(X, view), transforms, progress=False),
                                   rtol=1e-6, atol=1e-7, err_msg=str(view))
    bow = [{"type": "bow", "words": 6, "patch": 5, "samples": 1500, "iterations": 2, "symmetric": symmetric}]
    codebook = fit_codebook(images(30), words=6, patch=5, samples=1500, iterations=2, symmetric=symmetric)
    coded = extract_views(X, ["hog", *bow], views, chunk=3, progress=False, codebooks=[None, codebook])
    encoded = Encoder(codebook).encode_views(X.reshape(-1, 3, 32, 32), views)
    width = coded[0].shape[1] - encoded[0].shape[1]
    for view, rows, codes in zip(views, coded, encoded):
        np.testing.assert_allclose(rows[:, width:], codes, rtol=1e-4, atol=5e-5)  # other tiles, other rounding
        np.testing.assert_allclose(rows[:, :width], extract_features(viewed_by_loop(X, view), ["hog"],
                                                                     progress=False), rtol=1e-6, err_msg=str(view))
