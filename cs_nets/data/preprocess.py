"""Carve a validation split from the training set and normalize with training statistics.

The split follows the CS231n assignments: unshuffled, train is the first ``num_train``
rows and val the next ``num_val`` (both views, no copy); shuffled, a seeded permutation
picks them. The Normalizer learns its statistics from the training split only and keeps
them as arrays, so a saved model is evaluated with exactly the same preprocessing.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cs_nets import registry
from cs_nets.data.storage import ImageRows
from cs_nets.errors import ArgumentError

# Rows per chunk are chosen so a chunk is about this many elements (~8 MB as float32):
# big enough for NumPy's loops, small enough to stay in cache and bound temporaries.
CHUNK_ELEMENTS = 1 << 21


@dataclass
class Split:
    """Train/val/test arrays. X_*: (N_*, D) any dtype (uint8 views for CIFAR), y_*: (N_*,) int64."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list


def split_indices(n, num_train=None, num_val=1000, shuffle=False, seed=0):
    """Row indices of the train and val splits of ``n`` training rows.

    num_train: None means all rows not used for validation.
    Returns (train_idx, val_idx), int64 arrays: unshuffled ``arange(num_train)`` and
    the next ``num_val`` rows; shuffled, disjoint rows picked by a permutation seeded
    with ``seed``, each sorted so gathering them reads memory in order.
    Raises ArgumentError when the sizes are negative or do not fit in ``n``.
    """
    if num_val is None or num_val < 0:
        raise ArgumentError(f"num_val must be an integer >= 0, got {num_val!r}")
    if num_train is None:
        num_train = n - num_val
    if num_train < 1 or num_train + num_val > n:
        raise ArgumentError(
            f"num_train={num_train} and num_val={num_val} do not fit in the {n} training "
            f"images: need num_train >= 1 and num_train + num_val <= {n}"
        )
    if not shuffle:
        return np.arange(num_train), np.arange(num_train, num_train + num_val)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:num_train]), np.sort(order[num_train:num_train + num_val])


def split_train_val(raw, num_train=None, num_val=1000, shuffle=False, seed=0, in_place=False):
    """A Split of ``raw`` (a RawCifar, or anything with X_train/y_train/X_test/y_test/class_names).

    X_train may be any (N, D) array (pixels or features), or an ImageRows (data.storage uint8),
    whose training split is then an ImageRows of the same images (no copy) and the
    validation split a uint8 copy of its rows. Unshuffled, the splits are
    views of ``raw.X_train``; shuffled, they are copies, or with ``in_place`` the
    training rows are moved to the front of ``raw.X_train`` itself (which is
    overwritten) and X_train is a view of them, so a large training set is never
    held twice. The test split is passed through.
    """
    train_idx, val_idx = split_indices(len(raw.X_train), num_train, num_val, shuffle, seed)
    X, y = raw.X_train, raw.y_train
    if isinstance(X, ImageRows):  # uint8 storage: the training rows stay where they are, picked by an index
        X_train, X_val = X.subset(train_idx), X[val_idx]
    elif not shuffle:  # contiguous rows: slicing gives views instead of copies
        take_train = slice(0, len(train_idx))
        take_val = slice(len(train_idx), len(train_idx) + len(val_idx))
        X_train, X_val = X[take_train], X[take_val]
    elif in_place:
        X_val = X[val_idx]  # copied before the training rows move over them
        X_train = _gather_to_front(X, train_idx)
    else:
        X_train, X_val = X[train_idx], X[val_idx]
    return Split(X_train, y[train_idx], X_val, y[val_idx], raw.X_test, raw.y_test, list(raw.class_names))


def mirror_rows(X: np.ndarray, image_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Each image mirrored left-right: X (N, 3*S*S) rows of S x S colour images -> (N, 3*S*S).

    out: a C-contiguous array of X's shape to write into (default: a new one).
    """
    _check_2d(X, "X")
    if X.shape[1] != 3 * image_size * image_size:
        raise ArgumentError(f"X has {X.shape[1]} values per row; {image_size}x{image_size} colour images have "
                            f"{3 * image_size * image_size}")
    out = np.empty(X.shape, X.dtype) if out is None else out
    shape = (len(X), 3, image_size, image_size)
    out.reshape(shape)[...] = X.reshape(shape)[..., ::-1]
    return out


def _gather_to_front(X, rows):
    """X[rows] written over X's first len(rows) rows, chunk by chunk; returns that view.

    rows: sorted, distinct indices, so rows[j] >= j: each chunk reads rows at or after
    the ones it writes, and no row is overwritten before it has been read.
    """
    for chunk in _chunks(X[:len(rows)]):
        chunk = slice(chunk.start, min(chunk.stop, len(rows)))
        X[chunk] = X[rows[chunk]]  # the fancy read copies the chunk first
    return X[:len(rows)]


class Normalizer:
    """Center by the training mean and optionally scale by the training std; fit on the training split only.

    mode: "none" (only cast to ``dtype``), "mean" (subtract the mean image) or
    "mean_std" (subtract the mean, divide by the per-feature std). Features whose
    training std is below ``eps`` are only centered (their std is taken as 1), so a
    constant feature cannot blow up on new data.
    dtype: "float32" or "float64", the dtype of the output and of the stored statistics.
    Learned: mean_ (D,), std_ (D,) (as the mode needs), n_features_.
    """

    MODES = registry.NORMALIZATIONS
    DTYPES = registry.DTYPES

    def __init__(self, mode="mean", dtype="float32", eps=1e-8):
        if mode not in self.MODES:
            raise ArgumentError(f"normalization mode must be one of {', '.join(self.MODES)}; got {mode!r}")
        if str(dtype) not in self.DTYPES:
            raise ArgumentError(f"dtype must be float32 or float64, got {dtype!r}")
        self.mode = mode
        self.dtype = str(dtype)
        self.eps = eps
        self.mean_ = None
        self.std_ = None
        self.n_features_ = None

    def fit(self, X):
        """Learn the statistics of X: (N, D) uint8 or float (or an ImageRows), accumulated in float64."""
        X = _check_2d(X, "X")
        if len(X) == 0:
            raise ArgumentError("cannot fit a Normalizer on an empty training split")
        self.n_features_ = X.shape[1]
        if self.mode == "none":
            return self
        total = np.zeros(X.shape[1])
        for part in _map_chunks(lambda rows: X[rows].sum(axis=0, dtype=np.float64), X):
            total += part  # in chunk order: the same sums whatever the number of threads
        mean = total / len(X)
        self.mean_ = mean.astype(self.dtype)
        if self.mode == "mean_std":
            # Two passes (mean, then squared deviations) are stable where E[x^2]-E[x]^2 is not.
            def squared_deviations(rows):
                deviation = X[rows] - mean
                return np.einsum("ij,ij->j", deviation, deviation)

            squares = np.zeros(X.shape[1])
            for part in _map_chunks(squared_deviations, X):
                squares += part
            std = np.sqrt(squares / len(X))
            self.std_ = np.where(std < self.eps, 1.0, std).astype(self.dtype)
        return self

    def transform(self, X, out=None):
        """X: (N, D) -> (N, D) of ``dtype``, written chunk by chunk into ``out`` (allocated if None)."""
        if self.n_features_ is None:
            raise ArgumentError("the Normalizer is not fitted: call fit() on the training split first")
        X = _check_2d(X, "X")
        if X.shape[1] != self.n_features_:
            raise ArgumentError(f"X has {X.shape[1]} features, the Normalizer was fitted on {self.n_features_}")
        if out is None:
            out = np.empty(X.shape, dtype=self.dtype)
        elif out.shape != X.shape or out.dtype != np.dtype(self.dtype):
            raise ArgumentError(f"out must be {self.dtype} {X.shape}, got {out.dtype} {out.shape}")
        inv_std = self.inverse_std()

        def normalize(rows):  # out may be X itself: each element is read before it is written
            self.normalize_into(X[rows], out[rows], inv_std)

        _map_chunks(normalize, X)
        return out

    def inverse_std(self):
        """1 / std_ (D,) in ``dtype`` (divided in float64, then rounded), what ``normalize_into`` multiplies
        by; None without a std (modes none and mean)."""
        return None if self.std_ is None else (1.0 / self.std_.astype(np.float64)).astype(self.dtype)

    def normalize_into(self, X, out, inv_std):
        """out = (X - mean_) * inv_std elementwise, on this thread, allocating no array.

        X: (n, D) uint8 or float; out: (n, D) of ``dtype`` (may be X itself); inv_std: ``inverse_std()``,
        computed once by the caller. The one place the arithmetic lives: ``transform`` applies it to
        each chunk of a split, and uint8 storage (cs_nets.data.storage) to each minibatch as it is drawn,
        so both give the same bits.
        """
        if X.dtype != out.dtype and np.can_cast(X.dtype, out.dtype):
            # uint8 pixels: cast into out (exact), then work there; what the ufunc would compute with
            # X cast on the fly, slightly faster and without its casting buffers
            np.copyto(out, X)
            X = out
        if self.mean_ is None:
            if X is not out:
                np.copyto(out, X, casting="unsafe")
        else:
            np.subtract(X, self.mean_, out=out, casting="unsafe")
        if inv_std is not None:
            np.multiply(out, inv_std, out=out)

    def config(self):
        """JSON-able settings: {"mode", "dtype", "eps", "n_features"}."""
        return {"mode": self.mode, "dtype": self.dtype, "eps": self.eps, "n_features": self.n_features_}

    def state(self):
        """Learned arrays for an npz: "mean" (D,) and "std" (D,) as the mode has them."""
        arrays = {"mean": self.mean_, "std": self.std_}
        return {key: value for key, value in arrays.items() if value is not None}

    @classmethod
    def from_state(cls, config, arrays):
        """Rebuild a fitted Normalizer from ``config()`` and ``state()`` (arrays may be an NpzFile)."""
        norm = cls(config["mode"], config.get("dtype", "float32"), config.get("eps", 1e-8))
        arrays = {key: np.asarray(arrays[key], dtype=norm.dtype) for key in ("mean", "std") if key in arrays}
        need = {"none": (), "mean": ("mean",), "mean_std": ("mean", "std")}[norm.mode]
        absent = [key for key in need if key not in arrays]
        if absent:
            raise ArgumentError(f"Normalizer state for mode {norm.mode!r} lacks {', '.join(absent)}")
        norm.mean_ = arrays.get("mean") if "mean" in need else None
        norm.std_ = arrays.get("std") if "std" in need else None
        norm.n_features_ = len(norm.mean_) if norm.mean_ is not None else config.get("n_features")
        return norm


def _chunks(X):
    """Row slices covering X in chunks of about CHUNK_ELEMENTS elements."""
    step = max(1, CHUNK_ELEMENTS // max(1, X.shape[1]))
    return [slice(start, start + step) for start in range(0, len(X), step)]


def _map_chunks(fn, X):
    """[fn(rows) for rows in _chunks(X)], computed on up to ``worker_threads()`` threads.

    NumPy releases the GIL inside its loops, so chunks run in parallel; results come
    back in chunk order, so sums made from them do not depend on the thread count.
    """
    chunks = _chunks(X)
    workers = min(worker_threads(), len(chunks))
    if workers <= 1:
        return [fn(rows) for rows in chunks]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, chunks))


def worker_threads() -> int:
    """Threads for data preparation: the CPUs this process may use, at most 4, and at most
    OMP_NUM_THREADS when it is set (as for parallel runs that each should use one core)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        cpus = min(cpus, int(limit))
    return max(1, min(cpus, 4))


def _check_2d(X, name):
    if not isinstance(X, (np.ndarray, ImageRows)) or X.ndim != 2:
        shape = getattr(X, "shape", None)
        raise ArgumentError(f"{name} must be a 2-D array (N, D), got shape {shape}")
    return X
