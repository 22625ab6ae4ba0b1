"""CIFAR-100: the official python archive, fetched, verified, extracted and read like CIFAR-10.

Layout of ``cifar-100-python.tar.gz``: ``cifar-100-python/{train, test, meta}``. ``train``
(50,000 images) and ``test`` (10,000) are Python 2 pickles of a dict with ``data``
(N, 3072) uint8 in CIFAR row order, ``fine_labels`` (0..99) and ``coarse_labels``
(0..19); ``meta`` holds ``fine_label_names`` (100) and ``coarse_label_names`` (20).
``data.label_mode`` chooses which labels (and names) a run uses.

The same machinery as CIFAR-10: ``fetch`` (resume, retries, MD5), ``safe_extract``
(no links, no '..', validated before it is moved into place), the restricted
unpickler, and a file lock so that concurrent runs download once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cs_nets.data.batches import IMAGE_BYTES
from cs_nets.data.cifar10 import RawCifar
from cs_nets.data.download import expected_md5, fetch, file_md5, part_path
from cs_nets.data.extract import safe_extract
from cs_nets.data.locks import held_lock
from cs_nets.data.safe_pickle import load_untrusted
from cs_nets.errors import ConfigError, DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILENAME = "cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
SIZE = 169_001_437  # bytes
FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
LABEL_MODES = {"fine": 100, "coarse": 20}  # label_mode -> number of classes


def download_cifar100(data_dir, url=None, md5=None, force=False, progress=True, log=None, **fetch_options) -> Path:
    """Make sure ``data_dir/cifar-100-python`` is complete; return it. Rules as ``download_cifar10``:

    nothing is fetched when the folder is complete (unless ``force``); an archive already
    in ``data_dir`` is verified and extracted; md5 None means the official MD5 for the
    official URL and no check (said in the log) for a mirror.
    """
    log = log or (lambda line: None)
    data_dir = Path(data_dir).expanduser()
    folder = data_dir / FOLDER
    if not force and _complete(folder):
        log(f"CIFAR-100 is ready in {folder}")
        return folder
    expected = expected_md5(url, md5, URL, MD5, log)
    archive = data_dir / FILENAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the data folder {data_dir}: {err.strerror or err}") from None
    with held_lock(data_dir / f".{FILENAME}.lock", log,
                   f"another process is downloading or extracting into {data_dir}; waiting"):
        if force or not _complete(folder):
            if force:
                part_path(archive).unlink(missing_ok=True)
            if archive.exists() and not force:
                log(f"using {archive}")
                if expected is not None and (found := file_md5(archive)) != expected:
                    raise DataError(f"{archive} has MD5 {found}, expected {expected}: "
                                    f"delete it or download again with --force")
            else:
                fetch(url or URL, archive, expected, progress=progress, log=log,
                      hint=f"Put {FILENAME} at {archive} by hand, or use a mirror (data.url in a config).",
                      **fetch_options)
            log(f"extracting {archive.name} into {data_dir}")
            try:
                safe_extract(archive, data_dir, FOLDER, validate=lambda path: layout_files(path, archive))
            except DataError as err:
                raise DataError(f"{err}; delete {archive} or download again with --force") from None
    log(f"CIFAR-100 is ready in {folder}")
    return folder


def layout_files(folder, name=None) -> dict[str, Path]:
    """{"train", "test", "meta": path} of an extracted folder; DataError naming what is missing."""
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{name or folder} is incomplete: {', '.join(missing)} missing")
    return {f: folder / f for f in FILES}


def _complete(folder) -> bool:
    try:
        layout_files(folder)
    except (DataError, OSError):
        return False
    return True


def load_cifar100(data_dir, label_mode: str = "fine", train_dtype="uint8") -> RawCifar:
    """Read CIFAR-100 from ``data_dir`` (or its cifar-100-python folder) -> RawCifar with X_*: (N, 3072) uint8
    (X_train in ``train_dtype``), y_*: (N,) int64 fine (0..99) or coarse (0..19) labels, and their names."""
    if label_mode not in LABEL_MODES:
        raise ConfigError(f"data.label_mode: expected one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    data_dir = Path(data_dir).expanduser()
    folder = data_dir / FOLDER if _complete(data_dir / FOLDER) or not _complete(data_dir) else data_dir
    if not _complete(folder):
        raise DataError(f"CIFAR-100 is not in {data_dir}: download it first (data.source cifar100 does, "
                        f"when data.url or the official site is reachable)")
    files = layout_files(folder)
    names = read_names(files["meta"], label_mode)
    X_train, y_train = read_split(files["train"], label_mode, len(names))
    X_test, y_test = read_split(files["test"], label_mode, len(names))
    if train_dtype != "uint8":
        X_train = X_train.astype(train_dtype)
    return RawCifar(X_train, y_train, X_test, y_test, names, f"cifar100-{label_mode}", folder)


def read_names(path: Path, label_mode: str) -> list[str]:
    """The ``label_mode`` class names from ``meta``: 100 fine or 20 coarse names."""
    entries = _load(path)
    key = f"{label_mode}_label_names"
    names = entries.get(key)
    if not isinstance(names, (list, tuple)) or len(names) != LABEL_MODES[label_mode]:
        found = len(names) if isinstance(names, (list, tuple)) else "no"
        raise DataError(f"{path} has {found} {key}, expected a list of {LABEL_MODES[label_mode]}")
    out = []
    for n in names:
        if isinstance(n, bytes):
            n = n.decode("utf-8", errors="strict") if _utf8(n) else None
        if not isinstance(n, str) or not 0 < len(n) <= 200:
            raise DataError(f"{path}: {key} holds something other than names")
        out.append(n)
    return out


def read_split(path: Path, label_mode: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """X: (N, 3072) uint8 and y: (N,) int64 in 0..num_classes-1 from the ``train`` or ``test`` pickle."""
    entries = _load(path)
    X = entries.get("data")
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != IMAGE_BYTES:
        found = f"{X.dtype} {X.shape}" if isinstance(X, np.ndarray) else type(X).__name__
        raise DataError(f"{path}: expected data of uint8 (N, {IMAGE_BYTES}), found {found}")
    key = f"{label_mode}_labels"
    try:
        y = np.asarray(entries.get(key))
    except (TypeError, ValueError):
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(X):
        raise DataError(f"{path}: {key} is not a list of {len(X)} integers")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{path}: {key} must be in 0..{num_classes - 1}, found {y.min()}..{y.max()}")
    return X, y.astype(np.int64)


def ensure_cifar100(data_dir, label_mode="fine", url=None, md5=None, progress=True, log=None,
                    train_dtype="uint8", **fetch_options) -> RawCifar:
    """Download and extract CIFAR-100 if it is not there yet, then load it (see load_cifar100)."""
    download_cifar100(data_dir, url=url, md5=md5, progress=progress, log=log, **fetch_options)
    return load_cifar100(data_dir, label_mode, train_dtype)


def _load(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = load_untrusted(f, str(path))
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR-100 file: it holds a {type(obj).__name__}, not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
