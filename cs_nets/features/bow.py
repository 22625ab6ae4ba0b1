"""Bag of visual words: a k-means codebook of small patches, and images encoded against it.

The lecture's "Step 1: build codebook, Step 2: encode images", done as in Coates,
Lee & Ng (2011), "An analysis of single-layer networks in unsupervised feature
learning" (77.9% on CIFAR-10 with 1,600 words, whitening, triangle encoding and
quadrant pooling). Definitions (the tests hold per-patch loops to them):

1. Patch: a p x p window of the image, all 3 channels, as a vector of length
   3 p² in (channel, row, column) order, pixel values 0..255 as float32.
2. Normalization (brightness and contrast): each patch minus its own mean,
   divided by sqrt(its variance + 10). The +10 (in pixel units squared) keeps
   nearly flat patches, like sky, from being blown up into noise.
3. Whitening (optional, ZCA): with the mean m and covariance C = V diag(s) V^T of
   the normalized training patches, z = (x - m) W, W = V diag(1 / sqrt(s + 0.1)) V^T.
   It decorrelates neighbouring pixels, so k-means finds edges rather than blurs.
4. Codebook: k-means (Lloyd) on ``samples`` patches drawn at random (seeded) from
   the training images only. It starts from ``words`` distinct random patches;
   each round assigns every patch to its nearest centroid (squared Euclidean
   distance, ties to the lower index) and moves each centroid to the mean of its
   patches; a centroid that gets none stays where it is.
   Symmetric (optional): the words come in left-right mirror pairs, word K/2 + j the
   mirror of word j, and the whitening commutes with mirroring (its mean and
   covariance are those of the patches and their mirrors). A mirrored image's codes
   are then the original's with each word swapped for its pair, so the encoder
   gives both from one pass (``Encoder.encode_views``; triangle codes). k-means runs on
   the K/2 first words: a patch nearest to a mirror word counts, mirrored, for its pair.
5. Encoding of an image: every patch on a grid with step ``stride`` (P x P
   positions, P = (S - p) // stride + 1 for S x S images), normalized and whitened like the
   training patches, is compared with the K centroids at distances d_k:
     hard:     f = one-hot of the nearest centroid (the lecture's histogram);
     triangle: f_k = max(0, mean_j(d_j) - d_k), with d_k = ||z - c_k|| (not squared):
               a soft assignment that is zero for the farther half of the words.
6. Pooling: f averaged over the patches of the whole image (``image``, K values:
   for hard encoding the fraction of patches per word) or of each quadrant
   (``quadrants``, 4K values in the order top-left, top-right, bottom-left,
   bottom-right, each K long). Position rows i < (P + 1) // 2 are the top half,
   the same split for columns.
7. Views (test-time augmentation, ``cs_nets.features.views``): the codes of the image
   moved a few pixels are those of its own patches that the moved image holds whole,
   pooled over the moved image's regions; no patch is encoded twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from cs_nets.errors import ArgumentError
from cs_nets.features.views import MIRROR, ORIGINAL

CONTRAST_EPS = 10.0  # added to each patch's variance (pixel units²) before dividing
WHITEN_EPS = 0.1  # added to the covariance eigenvalues before the inverse square root
ENCODINGS = ("triangle", "hard")
POOLINGS = ("quadrants", "image")
# Rows of the (patches, words) score block of k-means: about 16 MB of float32.
BLOCK_ELEMENTS = 1 << 22
# Distances per encoder tile: about 4 MB of float32, so the passes between the products hit cache.
TILE_ELEMENTS = 1 << 20


@dataclass
class Codebook:
    """What a ``bow`` transform learns from the training images.

    centroids: (K, 3p²) float32 cluster centres in whitened patch space.
    whiten_mean: (3p²,) float32 and whiten_matrix: (3p², 3p²) float32, or both
    None when whitening is off. patch: p.
    symmetric: the centroids are mirror pairs and the whitening commutes with mirroring
    (see the module's point 4; ``from_state`` checks it).
    """

    centroids: np.ndarray
    whiten_mean: np.ndarray | None
    whiten_matrix: np.ndarray | None
    patch: int
    symmetric: bool = False

    def state(self) -> dict[str, np.ndarray]:
        arrays = {"centroids": self.centroids, "whiten_mean": self.whiten_mean,
                  "whiten_matrix": self.whiten_matrix}
        return {k: v for k, v in arrays.items() if v is not None}

    @classmethod
    def from_state(cls, arrays: dict, patch: int, words: int, whiten: bool, symmetric: bool = False) -> Codebook:
        """Rebuild from ``state()``; ArgumentError when arrays are missing or misshapen, or are not
        mirror-symmetric when `symmetric` says they are."""
        dim = 3 * patch * patch
        need: dict[str, tuple[int, ...]] = {"centroids": (words, dim)}
        if whiten:
            need.update(whiten_mean=(dim,), whiten_matrix=(dim, dim))
        got = {}
        for key, shape in need.items():
            if key not in arrays:
                raise ArgumentError(f"bow codebook state lacks {key!r}")
            value = np.asarray(arrays[key], dtype=np.float32)
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ArgumentError(f"bow codebook {key}: expected finite {shape}, got {value.shape}")
            got[key] = value
        codebook = cls(got["centroids"], got.get("whiten_mean"), got.get("whiten_matrix"), patch, symmetric)
        if symmetric and not codebook.is_mirror_symmetric():
            raise ArgumentError("bow codebook: expected mirror pairs of words and a mirror-symmetric whitening")
        return codebook

    def is_mirror_symmetric(self) -> bool:
        """True when word K/2 + j is word j mirrored (K even) and the whitening commutes with mirroring."""
        k = len(self.centroids)
        flip = mirror_permutation(self.patch)
        half = self.centroids[: k // 2]
        if k % 2 or not np.array_equal(self.centroids[k // 2 :], half[:, flip]):
            return False
        if self.whiten_matrix is None or self.whiten_mean is None:
            return self.whiten_matrix is None and self.whiten_mean is None
        return bool(np.array_equal(self.whiten_mean[flip], self.whiten_mean)
                    and np.array_equal(self.whiten_matrix[flip][:, flip], self.whiten_matrix))

    def digest(self) -> str:
        """Hex SHA-256 of every array: the feature cache is keyed by it."""
        h = hashlib.sha256(f"patch={self.patch}".encode())
        if self.symmetric:  # only then, so that the digests (and feature caches) of other codebooks stay
            h.update(b"symmetric")
        for key, value in sorted(self.state().items()):
            h.update(f"{key}{value.shape}{value.dtype}".encode())
            h.update(np.ascontiguousarray(value).data)
        return h.hexdigest()


# ----------------------------------------------------------------------------- patches


def positions(patch, stride, side=32):
    """P, the number of patch positions along one side of a `side`-pixel image."""
    return (side - patch) // stride + 1


def sample_patches(X, patch, count, rng, side=32):
    """`count` patches at random images and positions: (count, 3 p²) float32.

    X: (N, 3 S S) uint8 CIFAR rows of S x S images, S = side (the training split).
    rng: np.random.Generator.
    """
    images = X.reshape(-1, 3, side, side)
    which = rng.integers(0, len(images), size=count)
    top = rng.integers(0, side - patch + 1, size=count)
    left = rng.integers(0, side - patch + 1, size=count)
    offsets = np.arange(patch)
    rows = (top[:, None] + offsets)[:, None, :, None]  # (count, 1, p, 1)
    cols = (left[:, None] + offsets)[:, None, None, :]  # (count, 1, 1, p)
    channel = np.arange(3)[None, :, None, None]
    gathered = images[which[:, None, None, None], channel, rows, cols]  # (count, 3, p, p)
    return gathered.reshape(count, -1).astype(np.float32)


def mirror_permutation(patch):
    """(3 p²,) int64 index: P[:, mirror_permutation(p)] mirrors patch rows left-right ((channel, row, column) order)."""
    index = np.arange(3 * patch * patch).reshape(3, patch, patch)
    return index[:, :, ::-1].ravel()


def normalize_patches(P):
    """In place: each row minus its mean, divided by sqrt(its variance + CONTRAST_EPS). P: (M, D) float32."""
    P -= P.mean(axis=1, keepdims=True)
    variance = np.einsum("ij,ij->i", P, P) / np.float32(P.shape[1])
    P *= (1.0 / np.sqrt(variance + np.float32(CONTRAST_EPS)))[:, None]
    return P


def fit_whitening(P, flip=None):
    """ZCA of normalized patches P: (M, D) float32 -> (mean (D,), W (D, D)) float32, z = (x - mean) W.

    flip: None, or a (D,) permutation (``mirror_permutation``): the mean and covariance are then
    those of the rows of P and their mirrors together, and mean, W come out exactly symmetric.
    """
    mean = P.mean(axis=0, dtype=np.float64)
    centered = (P - mean.astype(np.float32)).astype(np.float64)
    cov = (centered.T @ centered) / len(P)  # one float64 BLAS product (mixed dtypes would skip BLAS)
    if flip is not None:  # second moments of the rows and their mirrors, about their common mean
        moments = cov + np.outer(mean, mean)
        mean = (mean + mean[flip]) / 2
        cov = (moments + moments[flip][:, flip]) / 2 - np.outer(mean, mean)
    s, V = np.linalg.eigh(cov)
    W = (V * (1.0 / np.sqrt(np.maximum(s, 0.0) + WHITEN_EPS))) @ V.T
    mean, W = mean.astype(np.float32), W.astype(np.float32)
    if flip is not None:  # eigh's rounding undone: equal entries, bit for bit
        mean = (mean + mean[flip]) / np.float32(2)
        W = (W + W[flip][:, flip]) / np.float32(2)
    return mean, W


# ----------------------------------------------------------------------------- k-means


def nearest_centroid(P, centroids, threads=None):
    """Index of the nearest centroid of each row: (M,) int64. P: (M, D), centroids: (K, D).

    argmin ||x - c||² = argmax (x·c - ||c||²/2): ||x||² is the same for every c, and
    [x, 1] @ [cᵀ; -||c||²/2] gives the scores of a block of rows in one product.
    Works in blocks of rows so the (rows, K) scores stay small; ``threads`` workers
    (None: as many as NumPy's BLAS uses) take blocks in turn (see ``run_workers``).
    """
    k, dim = centroids.shape
    augmented = np.empty((dim + 1, k), dtype=np.float32)
    augmented[:dim] = centroids.T
    augmented[dim] = -0.5 * np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(len(P), dtype=np.int64)
    step = max(1, BLOCK_ELEMENTS // max(1, k))
    blocks = [(start, min(start + step, len(P))) for start in range(0, len(P), step)]

    def work(mine):
        rows = np.empty((step, dim + 1), dtype=np.float32)
        scores = np.empty((step, k), dtype=np.float32)
        for start, stop in mine:
            m = stop - start
            rows[:m, :dim] = P[start:stop]
            rows[:m, dim] = 1
            np.matmul(rows[:m], augmented, out=scores[:m])
            labels[start:stop] = scores[:m].argmax(axis=1)

    run_workers(work, blocks, threads)
    return labels


def kmeans_init(P, k, rng):
    """Sorted indices of k distinct rows of P: (M, D), chosen by `rng`, the k-means starting points."""
    if not 1 <= k <= len(P):
        raise ArgumentError(f"k-means: need 1 <= k <= {len(P)} patches, got k={k}")
    return np.sort(rng.choice(len(P), size=k, replace=False))


def kmeans(P, centroids, iterations, flip=None):
    """Lloyd's k-means from `centroids`: (K, D) -> (K, D) float32, P: (M, D) float32.

    Each round: assign every row to its nearest centroid, move each centroid to the
    mean of its rows; a centroid with no rows keeps its place.
    flip: None, or a (D,) permutation (``mirror_permutation``): `centroids` are then the
    first K of a codebook of 2K, completed by their mirrors; a row nearest to the mirror
    of centroid j counts, mirrored, for j. Returns the 2K words, mirrors last.
    """
    centroids = np.array(centroids, dtype=np.float32)
    k = len(centroids)

    def words():
        return centroids if flip is None else np.concatenate([centroids, centroids[:, flip]])

    P64 = P.astype(np.float64) if iterations else P  # once: the per-cluster sums are float64
    for _ in range(iterations):
        labels = nearest_centroid(P, words())
        counts = np.bincount(labels, minlength=len(words()))
        # Rows sorted by cluster, summed per cluster in float64 (one reduceat, not a loop).
        sums = np.zeros((len(counts), P.shape[1]))
        filled = counts > 0
        grouped = P64[np.argsort(labels, kind="stable")]
        sums[filled] = np.add.reduceat(grouped, (np.cumsum(counts) - counts)[filled], axis=0)
        if flip is not None:  # the rows of mirror word j, mirrored (a permutation of their sum), join word j's
            sums = sums[:k] + sums[k:][:, flip]
            counts = counts[:k] + counts[k:]
            filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
    return words()


def fit_codebook(X, words=256, patch=6, whiten=True, samples=100_000, iterations=20, seed=0, side=32,
                 symmetric=False):
    """Learn a Codebook from training images X: (N, 3 S S) uint8 CIFAR rows of S x S images, S = side
    (the training split only; 3072 values for CIFAR's 32 x 32).
    symmetric: words in mirror pairs (an even number of them), see the module's point 4."""
    if X.ndim != 2 or X.shape[1] != 3 * side * side:
        raise ArgumentError(f"fit_codebook: X has {X.shape[1:]} values per row; {side}x{side} colour images have "
                            f"{3 * side * side}")
    if patch > side:
        raise ArgumentError(f"fit_codebook: patch {patch} is larger than the {side}x{side} images")
    if symmetric and words % 2:
        raise ArgumentError(f"fit_codebook: symmetric words come in mirror pairs; got an odd number, {words}")
    rng = np.random.default_rng(seed)
    P = normalize_patches(sample_patches(X, patch, samples, rng, side))
    flip = mirror_permutation(patch) if symmetric else None
    mean = matrix = None
    if whiten:
        mean, matrix = fit_whitening(P, flip)
        P = (P - mean) @ matrix
    start = P[kmeans_init(P, words // 2 if symmetric else words, rng)]
    return Codebook(kmeans(P, start, iterations, flip), mean, matrix, patch, symmetric)


# ----------------------------------------------------------------------------- encoding


class Encoder:
    """Encodes images against one codebook: ``Encoder(codebook, ...)(images) -> (n, R * K) float32``.

    The distances come from one matrix product per tile of images, with whitening
    folded into the centroids and both squared norms into extra columns:
        z = x W - m W,  ||z - c||² = ||xW||² - 2 xW·c' + ||c'||²  with c' = c + m W,
    so  [xW, 1, ||xW||²] @ [-2 c'ᵀ; ||c'||²; 1]  is the whole (patches, K) block of
    squared distances. Pooling is a product too: (R, P²) rows of 1 / region size
    times each image's (P², K) codes. What is left between the products (square
    root, row mean, one minimum) runs in place on a tile small enough to stay in
    cache (``TILE_ELEMENTS``), and ``threads`` workers encode tiles side by side
    (NumPy and BLAS release the GIL), each with a one-thread BLAS, so every core
    runs the products and the elementwise passes alike.
    Patches are kept transposed, (3p², patches): copying the windows out of the
    images then moves rows of P pixels at a time instead of p.
    Views (``encode_views``): the codes of an image's mirror and of the image moved a
    few pixels come from the same code map, pooled over other regions.
    batch: images per tile (None: about TILE_ELEMENTS distances);
    threads: workers (None: as many as NumPy's BLAS uses).
    """

    def __init__(self, codebook, stride=1, encoding="triangle", pooling="quadrants", batch=None, side=32,
                 threads=None):
        if encoding not in ENCODINGS or pooling not in POOLINGS:
            raise ArgumentError(f"encoding/pooling: got {encoding!r}/{pooling!r}, "
                                f"expected one of {ENCODINGS} / {POOLINGS}")
        self.codebook, self.stride, self.encoding, self.pooling = codebook, stride, encoding, pooling
        self.side = side
        self.positions = positions(codebook.patch, stride, side)
        C = codebook.centroids.astype(np.float64)
        if codebook.whiten_matrix is not None:
            C = C + codebook.whiten_mean.astype(np.float64) @ codebook.whiten_matrix
        k, dim = C.shape
        self.words, self.dim = k, dim
        self.batch = batch or max(1, TILE_ELEMENTS // (self.positions ** 2 * k))
        self.threads = threads or blas_threads()
        self.centroid_matrix = np.empty((dim + 2, k), dtype=np.float32)
        self.centroid_matrix[:dim] = -2 * C.T
        self.centroid_matrix[dim] = np.einsum("ij,ij->i", C, C)
        self.centroid_matrix[dim + 1] = 1
        self.whiten_t = None if codebook.whiten_matrix is None else np.ascontiguousarray(codebook.whiten_matrix.T)
        self.row_mean = np.full(k, 1 / k, dtype=np.float32)
        self.region_count = len(regions(self.positions, pooling)[1])
        # One code map for an image and its mirror: a symmetric codebook on a grid that mirrors onto itself,
        # triangle codes only: a hard code must pick one of a pair's words for a patch that is its
        # own mirror (a flat one, say), and that pick cannot be mirrored.
        self.mirror_words = None
        if codebook.symmetric and encoding == "triangle" and (side - codebook.patch) % stride == 0:
            self.mirror_words = np.r_[k // 2 : k, 0 : k // 2]  # word j's mirror pair

    @property
    def output_dim(self):
        return self.region_count * self.words

    def __call__(self, images, mirrored_out=None):
        """images: (n, 3, side, side) uint8 -> (n, R * K) float32.

        mirrored_out: None, or an (n, R * K) float32 array that gets the codes of the images'
        left-right mirrors: from the same pass with ``mirror_words`` (a symmetric codebook, triangle
        codes, a grid that mirrors onto itself), else by encoding the mirrors.
        """
        if mirrored_out is None:
            return self.encode_views(images, [ORIGINAL])[0]
        return self.encode_views(images, [ORIGINAL, MIRROR], [None, mirrored_out])[0]

    def encode_views(self, images, views, outs=None):
        """The codes of `views` (``cs_nets.features.views.View``) of each image: one (n, R * K) float32 per view.

        images: (n, 3, side, side) uint8. outs: None, or one (n, R * K) float32 array per view to
        write into (None entries: new arrays); columns of a larger array will do.
        A moved view pools the patches that lie wholly inside the moved image, which are patches of
        the image itself: each region of the view takes the mean code of those of its positions
        (``view_regions``); the rows and columns that the move fills with copies of the edge are
        left out, and no patch is encoded twice. Its moves must be multiples of the stride.
        A mirror view reads the image's own code map with ``mirror_words``, else the mirrored
        images are encoded too.
        """
        n = len(images)
        outs = list(outs) if outs is not None else [None] * len(views)
        if len(outs) != len(views):
            raise ArgumentError(f"outs: got {len(outs)} arrays for {len(views)} views")
        for v, out in enumerate(outs):
            if out is None:
                outs[v] = np.empty((n, self.output_dim), dtype=np.float32)
            elif out.shape != (n, self.output_dim) or out.dtype != np.float32:
                name = "mirrored_out" if views[v] == MIRROR else f"outs[{v}]"
                raise ArgumentError(f"{name}: expected an ({n}, {self.output_dim}) float32 array, "
                                    f"got {out.shape} {out.dtype}")
        one_map = self.mirror_words is not None
        groups = [(images, [v for v, view in enumerate(views) if one_map or not view.mirrored])]
        if not one_map:
            groups.append((images[..., ::-1], [v for v, view in enumerate(views) if view.mirrored]))
        for source, members in groups:
            if members:
                self._encode_group(source, [views[v] for v in members], [outs[v] for v in members])
        return outs

    def _encode_group(self, images, views, outs):
        """``encode_views`` of views that all read the code map of `images` (the images, or their mirrors)."""
        # with mirror_words a mirror view reads the image's own code map, its columns in reverse
        flips = [view.mirrored and self.mirror_words is not None for view in views]
        pooling = [view_regions(self.positions, self.pooling, view, self.stride, flip)
                   for view, flip in zip(views, flips)]
        matrix = np.concatenate([pool_matrix(region, size) for region, size in pooling])
        targets = list(zip(outs, flips))
        n = len(images)
        tiles = [(start, min(start + self.batch, n)) for start in range(0, n, self.batch)]
        run_workers(lambda mine: self._encode_tiles(images, mine, matrix, pooling, targets), tiles, self.threads)

    def _encode_tiles(self, images, tiles, matrix, pooling, targets):
        """Encode images[start:stop] for each (start, stop) of `tiles` into `targets`; own buffers.

        matrix: (V R, P²) pooling rows of the V views; pooling: each view's (region, size) for hard
        codes; targets: each view's (out, swap): out (n, R K) float32, swap: each word's code is its
        mirror pair's (a mirror view read from the image's own code map).
        """
        k, dim, p, side = self.words, self.dim, self.codebook.patch, self.positions
        per_image = side * side
        batch = max(stop - start for start, stop in tiles)
        rows = batch * per_image
        # zT: [xW, 1, ||xW||²] transposed, (dim + 2, patches); without whitening x is written into it.
        z_buf = np.empty((dim + 2, rows), dtype=np.float32)
        x_buf = np.empty((dim, rows), dtype=np.float32) if self.whiten_t is not None else None
        d_buf = np.empty((rows, k), dtype=np.float32)
        pooled_buf = np.empty((batch, len(matrix), k), dtype=np.float32)
        for start, stop in tiles:
            chunk, m = images[start:stop], (stop - start) * per_image
            zt = z_buf[:, :m]
            xt = zt[:dim] if x_buf is None else x_buf[:, :m]
            xt.reshape(3, p, p, len(chunk), side, side)[...] = _windows_t(chunk, p, self.stride)
            _normalize_columns(xt)
            if x_buf is not None:
                np.matmul(self.whiten_t, xt, out=zt[:dim])
            zt[dim] = 1
            np.einsum("ij,ij->j", zt[:dim], zt[:dim], out=zt[dim + 1])
            d = d_buf[:m]
            np.matmul(zt.T, self.centroid_matrix, out=d)  # squared distances (patches, K)
            pooled = pooled_buf[: stop - start]
            if self.encoding == "hard":
                self._pool_hard(d.argmin(axis=1), pooled, pooling)
            else:
                self._pool_triangle(d, pooled, matrix)
            r = self.region_count
            for v, (out, swap) in enumerate(targets):
                block = pooled[:, v * r : (v + 1) * r]
                # a mirror's code of word k is the image's code of k's pair
                out[start:stop] = (block[:, :, self.mirror_words] if swap else block).reshape(stop - start, -1)

    def _pool_triangle(self, d, out, matrix):
        """out (n, V R, K) <- region means (the rows of `matrix`, (V R, P²)) of max(0, mean_j(d_j) - d_k),
        d: (n P², K) squared distances."""
        # Rounding can dip a squared distance just below 0: its root is NaN, found in the
        # row's mean (one BLAS pass that is needed anyway) and set to 0 = sqrt(max(0, d²)),
        # so no separate clipping pass over the whole block.
        with np.errstate(invalid="ignore"):
            np.sqrt(d, out=d)
        mu = d @ self.row_mean  # row means, as one BLAS pass
        bad = np.flatnonzero(np.isnan(mu))
        if len(bad):
            fixed = np.nan_to_num(d[bad], nan=0.0)
            d[bad] = fixed
            mu[bad] = fixed @ self.row_mean
        # max(0, mu - d) = mu - min(d, mu): the pooled mu is added back after pooling.
        np.minimum(d, mu[:, None], out=d)
        n = len(out)
        np.matmul(matrix, d.reshape(n, -1, self.words), out=out)
        np.subtract(matrix @ mu.reshape(n, -1, 1), out, out=out)

    def _pool_hard(self, nearest, out, pooling):
        """out (n, V R, K) <- for each view's (region, size) of ``pooling``: the fraction of each
        region's patches whose nearest word is k."""
        n, _, k = out.shape
        nearest = nearest.reshape(n, -1)
        for v, (region, size) in enumerate(pooling):
            r, inside = len(size), region >= 0
            index = (np.arange(n)[:, None] * r + region[inside]) * k + nearest[:, inside]
            counts = np.bincount(index.ravel(), minlength=n * r * k).reshape(n, r, k)
            out[:, v * r : (v + 1) * r] = counts / size[:, None]


def _windows(images, patch, stride):
    """(n, P, P, 3, p, p) view of the patches of `images` (n, 3, H, W), no copy."""
    windows = np.lib.stride_tricks.sliding_window_view(images, (patch, patch), axis=(2, 3))
    return windows[:, :, ::stride, ::stride].transpose(0, 2, 3, 1, 4, 5)


def _windows_t(images, patch, stride):
    """(3, p, p, n, P, P) view of the patches of `images` (n, 3, H, W), no copy: ``_windows`` transposed."""
    return _windows(images, patch, stride).transpose(3, 4, 5, 0, 1, 2)


def _normalize_columns(xt):
    """``normalize_patches`` of xt.T in place: xt (D, M) float32 holds one patch per column."""
    xt -= xt.mean(axis=0)
    variance = np.einsum("ij,ij->j", xt, xt) / np.float32(len(xt))
    variance += np.float32(CONTRAST_EPS)
    np.sqrt(variance, out=variance)
    np.divide(1, variance, out=variance)
    xt *= variance
    return xt


def run_workers(work, items, threads=None):
    """``work(items[w::workers])`` for each of min(threads, len(items)) workers, side by side.

    With more than one worker, BLAS runs one thread per worker meanwhile: the
    workers themselves fill the cores, with the products and the elementwise passes
    (NumPy releases the GIL in both), and a one-thread product does not stall when
    another process holds a core, as a product split over all cores does.
    threads: None = as many as NumPy's BLAS uses. An exception of a worker is raised here.
    """
    workers = min(threads or blas_threads(), len(items))
    if workers <= 1:
        work(items)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(work, items[w::workers]) for w in range(workers)]
        for job in jobs:
            job.result()


def blas_threads():
    """Threads of the BLAS NumPy uses (threadpoolctl), at least 1: how many tiles an Encoder runs at once."""
    from threadpoolctl import threadpool_info

    counts = [info.get("num_threads") or 1 for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(1, max(counts, default=1))


def regions(side, pooling):
    """Pooling region of each of the side x side positions (row-major) and the regions' sizes.

    Returns (P²,) int64 in 0..R-1 and (R,) float32: R = 1 for ``image``; for
    ``quadrants`` R = 4 (top-left, top-right, bottom-left, bottom-right), row and
    column i belong to the first half when i < (side + 1) // 2.
    """
    if pooling == "image":
        return np.zeros(side * side, dtype=np.int64), np.array([side * side], dtype=np.float32)
    second = (np.arange(side) >= (side + 1) // 2).astype(np.int64)
    region = (2 * second[:, None] + second[None, :]).ravel()
    return region, np.bincount(region, minlength=4).astype(np.float32)


def view_regions(side, pooling, view, stride=1, flip=False):
    """Which pooling region of `view` each position of a side x side code map counts for.

    Returns (P²,) int64 region of each position (row-major), -1 where it counts for none, and (R,)
    float32 region sizes. The view's position (i, j) shows the patch at (i - dy/stride, j - dx/stride)
    of the image (or of its mirror: ``view.mirrored``) when that is a position of the grid; it
    belongs to the region ``regions`` gives (i, j). flip: the code map is the unmirrored image's
    (with a symmetric codebook), whose column P - 1 - j is column j of the mirror's.
    """
    if view.dy % stride or view.dx % stride:
        raise ArgumentError(f"view {tuple(view)}: a move of the image must be a multiple of the bag of "
                            f"words' stride ({stride}) to keep its patches on the grid")
    region, size = regions(side, pooling)
    own = region.reshape(side, side)
    out = np.full((side, side), -1, dtype=np.int64)
    dy, dx = view.dy // stride, view.dx // stride
    # source position (a, b) is shown at (a + dy, b + dx): keep those inside the grid
    a, b = slice(max(0, -dy), min(side, side - dy)), slice(max(0, -dx), min(side, side - dx))
    out[a, b] = own[max(0, dy) : min(side, side + dy), max(0, dx) : min(side, side + dx)]
    if flip:
        out = out[:, ::-1]
    out = out.ravel()
    size = np.bincount(out[out >= 0], minlength=len(size)).astype(np.float32)
    if not size.all():
        raise ArgumentError(f"view {tuple(view)}: moved so far that a pooling region of the {side}x{side} "
                            "positions keeps no patch")
    return out, size


def pool_matrix(region, size):
    """(R, P²) float32: row r holds 1 / size[r] at the positions of region r (see ``view_regions``)."""
    matrix = np.zeros((len(size), len(region)), dtype=np.float32)
    inside = np.flatnonzero(region >= 0)
    matrix[region[inside], inside] = 1 / size[region[inside]]
    return matrix


def encode_images(images, codebook, stride=1, encoding="triangle", pooling="quadrants"):
    """Bag-of-words features: images (n, 3, S, S) uint8 -> (n, R * K) float32 (see ``Encoder``)."""
    return Encoder(codebook, stride, encoding, pooling, side=images.shape[-1])(images)
