"""Turn CIFAR pixel rows (or 2-D points) into concatenated feature vectors, chunk by chunk."""

import numpy as np
from tqdm import tqdm

from cs_nets.errors import ArgumentError, DataError
from cs_nets.features.bow import Codebook, Encoder
from cs_nets.features.color import color_histogram
from cs_nets.features.hog import hog_features, to_grayscale
from cs_nets.features.polar import polar_features
from cs_nets.features.spec import feature_dim, feature_sizes, is_point_transforms, normalize_transforms
from cs_nets.features.views import MIRROR, ORIGINAL, View, view_images

IMAGE_SIZE = 32  # CIFAR's side; folder datasets have data.image_size


def check_pixels(X, image_size=IMAGE_SIZE):
    """Raise DataError unless X is (N, 3 S S) uint8 CIFAR rows of S x S images, S = image_size
    (red plane, green plane, blue plane, each row-major: 3072 values for CIFAR's 32 x 32)."""
    pixels = 3 * image_size * image_size
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != pixels or X.dtype != np.uint8:
        got = f"{X.shape} {X.dtype}" if isinstance(X, np.ndarray) else type(X).__name__
        raise DataError(f"feature input: expected (N, {pixels}) uint8 CIFAR rows of {image_size}x{image_size} "
                        f"images, got {got}")


def check_out(out, shape):
    """`out` (or a new array when None) after checking it is a C-contiguous float32 array of `shape`."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != np.float32 \
            or not out.flags.c_contiguous:
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ArgumentError(f"out: expected a C-contiguous {tuple(shape)} float32 array, got {got}")
    return out


def check_codebooks(transforms, codebooks):
    """The fitted codebooks as a list aligned with `transforms` (None where nothing is learned).

    codebooks: None, or a sequence with a Codebook at the index of every ``bow`` transform.
    """
    codebooks = [None] * len(transforms) if codebooks is None else list(codebooks)
    if len(codebooks) != len(transforms):
        raise ArgumentError(f"codebooks: got {len(codebooks)} entries for {len(transforms)} transforms")
    for i, t in enumerate(transforms):
        if t["type"] == "bow" and not isinstance(codebooks[i], Codebook):
            raise ArgumentError(f"features[{i}] (bow) needs a fitted codebook: fit it on the training split")
        if t["type"] == "bow" and codebooks[i].patch != t["patch"]:
            raise ArgumentError(f"features[{i}]: the codebook has {codebooks[i].patch}-pixel patches, "
                                f"the transform {t['patch']}")
    return codebooks


def extract_features(X, transforms, chunk=1000, progress=True, codebooks=None, image_size=IMAGE_SIZE, out=None,
                     mirrored_out=None):
    """Apply each transform to every image and concatenate the results per image.

    X: (N, 3 S S) uint8 CIFAR rows of S x S images (S = image_size; 3072 values for 32),
    or (N, 2) float points for point transforms (polar, which ignore image_size).
    transforms: a ``features`` list (normalized here).  codebooks: what the ``bow``
    transforms learned (see ``check_codebooks``; fit them on the training split).
    Returns (N, F) float32 with F = feature_dim(transforms, (S, S, 3)), columns in transform order:
      raw        -> the 3 S S pixels / 255, in CIFAR order
      hog        -> hog_features(cell, bins) of the BT.601 grayscale image
      color_hist -> color_histogram(bins, space)
      bow        -> bag-of-words codes against the codebook (cs_nets.features.bow)
      polar      -> (r, θ) of each point
    Works on `chunk` images at a time (about 0.3 MB of temporaries per image for HOG)
    and shows a tqdm bar on stderr when `progress` is true and stderr is a terminal.
    out: a C-contiguous (N, F) float32 array to write into (None: a new one), e.g. rows of a larger array.
    mirrored_out: None, or a C-contiguous (N, F) float32 array that gets the features of the images'
      left-right mirrors, in the same pass (``extract_views``).
    """
    transforms = normalize_transforms(transforms)
    if is_point_transforms(transforms):
        if mirrored_out is not None:
            raise ArgumentError("mirrored_out: 2-D points have no mirror images")
        points = np.concatenate([polar_features(X) for _ in transforms], axis=1)
        if out is None:
            return points
        check_out(out, points.shape)[...] = points
        return out
    if mirrored_out is None:
        return extract_views(X, transforms, [ORIGINAL], [out], chunk, progress, codebooks, image_size)[0]
    return extract_views(X, transforms, [ORIGINAL, MIRROR], [out, mirrored_out], chunk, progress, codebooks,
                         image_size)[0]


def extract_views(X, transforms, views, outs=None, chunk=1000, progress=True, codebooks=None,
                  image_size=IMAGE_SIZE):
    """``extract_features`` of several views of the images (``cs_nets.features.views.View``), in one pass.

    X: (N, 3 S S) uint8 image rows. Returns one (N, F) float32 array per view (outs: None, or one
    C-contiguous (N, F) float32 array or None per view to write into). Each transform reads the
    view's image (``view_images``: mirrored, moved with its edges repeated), except where the
    image's own pass gives the view for less:
      color_hist -> a mirror's histogram is that of the unmirrored view (the same pixels);
      bow        -> the codes of every view come from the images' code map (``Encoder.encode_views``):
                    a moved view pools the patches the moved image holds whole.
    """
    transforms = normalize_transforms(transforms)
    if is_point_transforms(transforms):
        raise ArgumentError("views: 2-D points have no images to mirror or move")
    check_pixels(X, image_size)
    codebooks = check_codebooks(transforms, codebooks)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: got {chunk!r}, expected a positive integer")
    views = [View(*v) for v in views]
    outs = list(outs) if outs is not None else [None] * len(views)
    if len(outs) != len(views):
        raise ArgumentError(f"outs: got {len(outs)} arrays for {len(views)} views")
    n = len(X)
    outs = [check_out(out, (n, feature_dim(transforms, (image_size, image_size, 3)))) for out in outs]
    sizes = feature_sizes(transforms, (image_size, image_size, 3))
    encoders = {i: Encoder(codebooks[i], t["stride"], t["encoding"], t["pooling"], side=image_size)
                for i, t in enumerate(transforms) if t["type"] == "bow"}
    # disable=None lets tqdm hide itself when stderr is not a terminal.
    with tqdm(total=n, desc="features", unit="img", disable=None if progress else True) as bar:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            images = X[start:stop].reshape(-1, 3, image_size, image_size)  # a view: rows are contiguous
            seen: dict[View, np.ndarray] = {}  # each view's images, moved once per chunk
            grays: dict[View, np.ndarray] = {}  # and their grayscale, shared by the hog transforms
            column = 0
            for i, t in enumerate(transforms):
                blocks = [out[start:stop, column : column + sizes[i]] for out in outs]
                if t["type"] == "bow":
                    encoders[i].encode_views(images, views, blocks)
                else:
                    done: dict[View, np.ndarray] = {}
                    for view, block in zip(views, blocks):
                        if t["type"] == "color_hist" and view.mirrored:  # the same pixels: the same histogram
                            view = View(view.dy, -view.dx)
                        if view not in done:
                            done[view] = _transform(t, _images_of(view, images, seen), grays, view)
                        block[...] = done[view]
                column += sizes[i]
            bar.update(stop - start)
    return outs


def _images_of(view, images, seen):
    """``view_images(images, view)``, made once per chunk (`seen`: {view: images})."""
    if view not in seen:
        seen[view] = view_images(images, view)
    return seen[view]


def _transform(t, images, grays, view):
    """One raw, hog or color_hist transform of images (n, 3, S, S) uint8, `view` of a chunk's images,
    -> (n, width) float32. grays: {view: grayscale images} shared by the hog transforms of one chunk."""
    if t["type"] == "raw":
        return images.reshape(len(images), -1).astype(np.float32) / 255
    if t["type"] == "hog":
        if view not in grays:
            grays[view] = to_grayscale(images)
        return hog_features(grays[view], cell=t["cell"], bins=t["bins"])
    return color_histogram(images, bins=t["bins"], space=t["space"])
