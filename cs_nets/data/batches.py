"""Read single CIFAR-10 files of either official layout into validated arrays.

python layout: ``data_batch_<k>``, ``test_batch`` are Python 2 pickles of a dict with
``data`` (N, 3072) uint8 and ``labels`` (N,) ints; ``batches.meta`` holds ``label_names``.
binary layout: ``data_batch_<k>.bin``, ``test_batch.bin`` are N records of 1 label byte
+ 3072 pixel bytes; ``batches.meta.txt`` lists the class names one per line.

A pixel row is 1024 red, 1024 green, 1024 blue values, each a 32x32 image row-major.
Nothing here assumes 10,000 images per batch or 5 training batches.
"""

import re
from dataclasses import dataclass

import numpy as np

from cs_nets.data.safe_pickle import load_untrusted
from cs_nets.errors import DataError

IMAGE_BYTES = 3072
RECORD_BYTES = 1 + IMAGE_BYTES
NUM_CLASSES = 10


@dataclass(frozen=True)
class Layout:
    """File names of one official layout inside its folder."""

    fmt: str
    folder: str
    train_pattern: str  # regex; group 1 is the batch number
    test: str
    meta: str

    def batch_number(self, name):
        """The k of ``data_batch_<k>`` (int) or None when ``name`` is not a training batch."""
        match = re.fullmatch(self.train_pattern, name)
        return int(match.group(1)) if match else None


LAYOUTS = {
    "python": Layout("python", "cifar-10-batches-py", r"data_batch_(\d+)",
                     "test_batch", "batches.meta"),
    "binary": Layout("binary", "cifar-10-batches-bin", r"data_batch_(\d+)\.bin",
                     "test_batch.bin", "batches.meta.txt"),
}


def max_rows(fmt, nbytes):
    """An upper bound on the images in a batch file of ``nbytes`` bytes (exact for binary)."""
    return nbytes // (IMAGE_BYTES if fmt == "python" else RECORD_BYTES)


_BATCH_LABEL = re.compile(r"training batch ([1-9][0-9]{0,3}) of ([1-9][0-9]{0,3})")


def read_batch(fmt, file, name, declared: list | None = None):
    """Read one batch from the binary file object ``file``; ``name`` is used in errors.

    Returns X: (N, 3072) uint8 (may be a view of the file's bytes) and y: (N,) int64 in 0..9.
    declared: a list to which (k, K) is appended when the batch calls itself "training batch
    k of K" (the python layout's ``batch_label``), so the caller can tell a lost batch file
    from a mirror with fewer batches. Raises DataError for a corrupt, truncated or refused file.
    """
    if fmt == "python":
        return _read_python_batch(file, name, declared)
    return _read_binary_batch(file, name)


def check_declared_batches(numbers, declared, where) -> None:
    """DataError when the python layout's batch labels ("training batch k of K") name training
    batches that are not among ``numbers`` (the k of the files read), e.g. a deleted data_batch_5."""
    totals = {total for _, total in declared}
    if len(totals) != 1:
        return  # no labels (a mirror's own files) or inconsistent ones: nothing to hold the files against
    total = totals.pop()
    lost = [k for k in range(1, total + 1) if k not in set(numbers)]
    if lost:
        raise DataError(f"{where} is incomplete: {', '.join(f'data_batch_{k}' for k in lost[:5])} missing "
                        f"(its training batches say there are {total})")


def read_meta(fmt, file, name):
    """The class names (list of 10 str) from ``batches.meta`` or ``batches.meta.txt``."""
    if fmt == "python":
        entries = _str_keys(load_untrusted(file, name), name)
        names = entries.get("label_names")
        if not isinstance(names, (list, tuple)):
            raise DataError(f"{name} has no 'label_names' list")
        names = [_text(n, name) for n in names]
    else:
        names = [line.strip() for line in _text(file.read(), name).splitlines() if line.strip()]
    if len(names) != NUM_CLASSES:
        raise DataError(f"{name} lists {len(names)} class names, expected {NUM_CLASSES}")
    return names


def _read_python_batch(file, name, declared=None):
    entries = _str_keys(load_untrusted(file, name), name)
    if "data" not in entries or "labels" not in entries:
        raise DataError(f"{name} is not a CIFAR-10 batch: it has no 'data' and 'labels' entries")
    label = entries.get("batch_label")
    if declared is not None and isinstance(label, (bytes, str)):
        text = label.decode("latin1") if isinstance(label, bytes) else label
        match = _BATCH_LABEL.fullmatch(text.strip())
        if match:
            declared.append((int(match.group(1)), int(match.group(2))))
    X = entries["data"]
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != IMAGE_BYTES:
        found = f"{X.dtype} {X.shape}" if isinstance(X, np.ndarray) else type(X).__name__
        raise DataError(f"{name}: expected data of uint8 (N, {IMAGE_BYTES}), found {found}")
    return X, _labels(entries["labels"], len(X), name)


def _read_binary_batch(file, name):
    raw = file.read()
    if not raw:
        raise DataError(f"{name} holds no images (0 bytes): a CIFAR-10 batch holds at least one")
    if len(raw) % RECORD_BYTES:
        raise DataError(
            f"{name} is truncated or corrupt: {len(raw)} bytes is not a whole number "
            f"of {RECORD_BYTES}-byte records"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return records[:, 1:], _labels(records[:, 0], len(records), name)


def _labels(labels, n, name):
    """Labels as (n,) int64, checked to be n integers in 0..9 (n > 0: an empty batch is refused)."""
    if n == 0:
        raise DataError(f"{name} holds no images: a CIFAR-10 batch holds at least one")
    try:
        y = np.asarray(labels)
    except (TypeError, ValueError):
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{name}: labels are not a list of integers")
    if len(y) != n:
        raise DataError(f"{name} has {n} images but {len(y)} labels")
    if n and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{name}: labels must be in 0..{NUM_CLASSES - 1}, found {y.min()}..{y.max()}")
    return y.astype(np.int64)


def _str_keys(obj, name):
    """The pickled dict with its keys as str (Python 2 pickles give bytes keys)."""
    if not isinstance(obj, dict):
        raise DataError(f"{name} is not a CIFAR-10 file: it holds a {type(obj).__name__}, not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _text(value, name):
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{name}: class names are not valid UTF-8 text") from None
    raise DataError(f"{name}: expected text, found {type(value).__name__}")
