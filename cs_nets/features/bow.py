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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from cs_nets.errors import ArgumentError

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
    """

    centroids: np.ndarray
    whiten_mean: np.ndarray | None
    whiten_matrix: np.ndarray | None
    patch: int

    def state(self) -> dict[str, np.ndarray]:
        arrays = {"centroids": self.centroids, "whiten_mean": self.whiten_mean,
                  "whiten_matrix": self.whiten_matrix}
        return {k: v for k, v in arrays.items() if v is not None}

    @classmethod
    def from_state(cls, arrays: dict, patch: int, words: int, whiten: bool) -> Codebook:
        """Rebuild from ``state()``; ArgumentError when arrays are missing or misshapen."""
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
        return cls(got["centroids"], got.get("whiten_mean"), got.get("whiten_matrix"), patch)

    def digest(self) -> str:
        """Hex SHA-256 of every array: the feature cache is keyed by it."""
        h = hashlib.sha256(f"patch={self.patch}".encode())
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


def normalize_patches(P):
    """In place: each row minus its mean, divided by sqrt(its variance + CONTRAST_EPS). P: (M, D) float32."""
    P -= P.mean(axis=1, keepdims=True)
    variance = np.einsum("ij,ij->i", P, P) / np.float32(P.shape[1])
    P *= (1.0 / np.sqrt(variance + np.float32(CONTRAST_EPS)))[:, None]
    return P


def fit_whitening(P):
    """ZCA of normalized patches P: (M, D) float32 -> (mean (D,), W (D, D)) float32, z = (x - mean) W."""
    mean = P.mean(axis=0, dtype=np.float64)
    centered = (P - mean.astype(np.float32)).astype(np.float64)
    cov = (centered.T @ centered) / len(P)  # one float64 BLAS product (mixed dtypes would skip BLAS)
    s, V = np.linalg.eigh(cov)
    W = (V * (1.0 / np.sqrt(np.maximum(s, 0.0) + WHITEN_EPS))) @ V.T
    return mean.astype(np.float32), W.astype(np.float32)


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


def kmeans(P, centroids, iterations):
    """Lloyd's k-means from `centroids`: (K, D) -> (K, D) float32, P: (M, D) float32.

    Each round: assign every row to its nearest centroid, move each centroid to the
    mean of its rows; a centroid with no rows keeps its place.
    """
    centroids = np.array(centroids, dtype=np.float32)
    k = len(centroids)
    P64 = P.astype(np.float64) if iterations else P  # once: the per-cluster sums are float64
    for _ in range(iterations):
        labels = nearest_centroid(P, centroids)
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        # Rows sorted by cluster, summed per cluster in float64 (one reduceat, not a loop).
        grouped = P64[np.argsort(labels, kind="stable")]
        starts = (np.cumsum(counts) - counts)[filled]
        sums = np.add.reduceat(grouped, starts, axis=0)
        centroids[filled] = (sums / counts[filled, None]).astype(np.float32)
    return centroids


def fit_codebook(X, words=256, patch=6, whiten=True, samples=100_000, iterations=20, seed=0, side=32):
    """Learn a Codebook from training images X: (N, 3 S S) uint8 CIFAR rows of S x S images, S = side
    (the training split only; 3072 values for CIFAR's 32 x 32)."""
    if X.ndim != 2 or X.shape[1] != 3 * side * side:
        raise ArgumentError(f"fit_codebook: X has {X.shape[1:]} values per row; {side}x{side} colour images have "
                            f"{3 * side * side}")
    if patch > side:
        raise ArgumentError(f"fit_codebook: patch {patch} is larger than the {side}x{side} images")
    rng = np.random.default_rng(seed)
    P = normalize_patches(sample_patches(X, patch, samples, rng, side))
    mean = matrix = None
    if whiten:
        mean, matrix = fit_whitening(P)
        P = (P - mean) @ matrix
    start = P[kmeans_init(P, words, rng)]
    return Codebook(kmeans(P, start, iterations), mean, matrix, patch)


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
        self.region, self.region_size = regions(self.positions, pooling)
        # Pooling as a product: (R, P²) rows of 1/region size, times (P², K) codes per image.
        self.pool_matrix = np.zeros((len(self.region_size), self.positions ** 2), dtype=np.float32)
        self.pool_matrix[self.region, np.arange(self.positions ** 2)] = 1 / self.region_size[self.region]

    @property
    def output_dim(self):
        return len(self.region_size) * self.words

    def __call__(self, images):
        """images: (n, 3, side, side) uint8 -> (n, R * K) float32."""
        n = len(images)
        out = np.empty((n, len(self.region_size), self.words), dtype=np.float32)
        tiles = [(start, min(start + self.batch, n)) for start in range(0, n, self.batch)]
        run_workers(lambda mine: self._encode_tiles(images, mine, out), tiles, self.threads)
        return out.reshape(n, -1)

    def _encode_tiles(self, images, tiles, out):
        """Encode images[start:stop] into out[start:stop] for each (start, stop) of `tiles`; own buffers."""
        k, dim, p, side = self.words, self.dim, self.codebook.patch, self.positions
        per_image = side * side
        rows = max(stop - start for start, stop in tiles) * per_image
        # zT: [xW, 1, ||xW||²] transposed, (dim + 2, patches); without whitening x is written into it.
        z_buf = np.empty((dim + 2, rows), dtype=np.float32)
        x_buf = np.empty((dim, rows), dtype=np.float32) if self.whiten_t is not None else None
        d_buf = np.empty((rows, k), dtype=np.float32)
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
            if self.encoding == "hard":
                self._pool_hard(d.argmin(axis=1), out[start:stop])
            else:
                self._pool_triangle(d, out[start:stop])

    def _pool_triangle(self, d, out):
        """out (n, R, K) <- region means of max(0, mean_j(d_j) - d_k), d: (n P², K) squared distances."""
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
        np.matmul(self.pool_matrix, d.reshape(n, -1, self.words), out=out)
        np.subtract(self.pool_matrix @ mu.reshape(n, -1, 1), out, out=out)

    def _pool_hard(self, nearest, out):
        """out (n, R, K) <- fraction of each region's patches whose nearest word is k."""
        n, regions_, k = out.shape
        image = np.repeat(np.arange(n), self.positions ** 2)
        region = np.tile(self.region, n)
        counts = np.bincount((image * regions_ + region) * k + nearest, minlength=n * regions_ * k)
        out[...] = (counts.reshape(n, regions_, k) / self.region_size[:, None]).astype(np.float32)


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


def encode_images(images, codebook, stride=1, encoding="triangle", pooling="quadrants"):
    """Bag-of-words features: images (n, 3, S, S) uint8 -> (n, R * K) float32 (see ``Encoder``)."""
    return Encoder(codebook, stride, encoding, pooling, side=images.shape[-1])(images)
