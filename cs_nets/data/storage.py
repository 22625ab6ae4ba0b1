"""data.storage uint8: the training images stay uint8, and each minibatch is normalized as it is drawn.

With ``data.storage: float32`` (what ``auto`` picks when it fits) the pipeline turns the
training split into one float array, normalized once: 4 bytes per pixel. With ``uint8``
it keeps the pixels, 1 byte each, and the trainer gets a ``NormalizedRows`` instead:

    rows = ImageRows(images, index)          # row i is images[index[i]]: nothing copied
    X_train = NormalizedRows(rows, normalizer)
    X_train.take(idx, axis=0, out=batch)     # what the trainer calls for each minibatch
    X_train[eval_idx]                        # a float copy of some rows, normalized

``images`` is a uint8 array in memory (CIFAR-10, CIFAR-100, synthetic) or the decoded-image
cache of a folder dataset mapped from disk (``np.load(mmap_mode="r")``): then the pixels
are not read into the process's memory at all; the OS pages them in as batches touch them
and may drop them again (they are page cache, not anonymous memory). ``index`` puts the
rows in training order (a folder's shuffled order, the split's rows) without moving them.

Each batch is gathered (uint8), then normalized into the trainer's float buffer by
``Normalizer.normalize_into``, the very function ``Normalizer.transform`` applies to the
whole split in the float32 storage: the same float operations on the same values in the
same order, so training gives the same bits with either storage (tests/test_storage.py).
The buffers are allocated once, on the first batch; one NormalizedRows serves one thread.
"""

from __future__ import annotations

import numpy as np

from cs_nets.errors import ArgumentError


class ImageRows:
    """(N, D) uint8 rows that live in another array: row i is ``images[index[i]]``; nothing is copied.

    images: (M, D) uint8, in memory or a np.memmap; index: (N,) int64 row numbers into it
    (default: all M rows in order). ``rows[key]`` (an int array or a slice) is a uint8 copy of
    those rows; ``subset(key)`` is a new ImageRows of them, still without a copy.
    """

    ndim = 2
    dtype = np.dtype(np.uint8)

    def __init__(self, images: np.ndarray, index: np.ndarray | None = None):
        if images.ndim != 2 or images.dtype != np.uint8:
            raise ArgumentError(f"ImageRows needs (M, D) uint8 images, got {images.dtype} {images.shape}")
        self.images = images
        self.index = np.arange(len(images), dtype=np.int64) if index is None else np.asarray(index, np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.index), int(self.images.shape[1]))

    @property
    def nbytes(self) -> int:
        """Bytes of the rows it stands for (uint8), and of its index."""
        return self.shape[0] * self.shape[1] + self.index.nbytes

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        """A (n, D) uint8 copy (in memory) of the rows ``key`` (an int array or a slice) picks."""
        return np.asarray(np.take(self.images, self.index[key], axis=0))

    def subset(self, key) -> ImageRows:
        """The rows ``key`` picks, in that order, as an ImageRows of the same images (no copy)."""
        return ImageRows(self.images, self.index[key])

    def is_mapped(self) -> bool:
        """Whether the pixels are mapped from a file (a folder's cache) rather than held in memory."""
        return isinstance(self.images, np.memmap)


class NormalizedRows:
    """(N, D) model inputs computed on demand: ImageRows ``rows`` through a fitted ``normalizer``.

    What ``cs_nets.training.trainer.fit`` trains on with ``data.storage: uint8``: it has the
    ``shape``, ``dtype`` (the normalizer's float dtype), ``rows[key]`` and
    ``take(idx, axis=0, out=buffer, mode="clip")`` of the float array it stands for, and gives
    the values that array would hold, bit for bit.
    """

    ndim = 2
    storage = "uint8"

    def __init__(self, rows: ImageRows, normalizer):
        if normalizer.n_features_ is None:
            raise ArgumentError("NormalizedRows needs a fitted Normalizer")
        if rows.shape[1] != normalizer.n_features_:
            raise ArgumentError(f"the rows have {rows.shape[1]} values, the Normalizer was fitted on "
                                f"{normalizer.n_features_}")
        self.rows = rows
        self.normalizer = normalizer
        self.dtype = np.dtype(normalizer.dtype)
        self._inv_std = normalizer.inverse_std()  # once, not per batch
        self._pixels = np.empty((0, rows.shape[1]), np.uint8)  # the gathered batch, grown on first use
        self._where = np.empty(0, np.int64)  # the batch's row numbers in rows.images

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.shape

    @property
    def nbytes(self) -> int:
        """Bytes of the uint8 rows behind it (not of the float array it stands for)."""
        return self.rows.nbytes

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        """A (n, D) float copy of the normalized rows ``key`` (an int array or a slice) picks."""
        pixels = self.rows[key]
        out = np.empty(pixels.shape, self.dtype)
        self.normalizer.normalize_into(pixels, out, self._inv_std)
        return out

    def take(self, indices: np.ndarray, axis: int = 0, out: np.ndarray | None = None,
             mode: str = "clip") -> np.ndarray:
        """The normalized rows ``indices`` (n,) written into ``out`` (n, D) of ``dtype``, as
        ``np.take(float_array, indices, axis=0, out=out)`` would; nothing is allocated after the first call.

        indices must be valid row numbers (the trainer passes a slice of a permutation);
        ``mode`` is accepted for the same signature as ndarray.take and always "clip".
        """
        if axis != 0 or out is None:
            raise ArgumentError("NormalizedRows.take gathers rows (axis=0) into a given out buffer")
        n = len(indices)
        if len(self._where) < n:  # the first (largest) batch sets the buffers' size
            self._where = np.empty(n, np.int64)
            self._pixels = np.empty((n, self.shape[1]), np.uint8)
        where, pixels = self._where[:n], self._pixels[:n]
        np.take(self.rows.index, indices, out=where, mode="clip")
        np.take(self.rows.images, where, axis=0, out=pixels, mode="clip")
        self.normalizer.normalize_into(pixels, out, self._inv_std)
        return out

    def __getstate__(self) -> dict:  # a sweep ships the dataset to its trials: not the buffers
        state = dict(self.__dict__)
        state["_pixels"] = np.empty((0, self.shape[1]), np.uint8)
        state["_where"] = np.empty(0, np.int64)
        return state
