"""Your own images: a folder in torchvision's ImageFolder layout -> RawImages (uint8 CIFAR-order rows).

Layout (class names are the subfolder names, sorted; files of any depth below a
class folder belong to it; names starting with "." are ignored)::

    DIR/train/<class>/*.png ...   and   DIR/test/<class>/*.jpg ...     (a given test split)
    DIR/<class>/*.jpg ...                                               (with data.test_fraction)

Without train/ and test/, ``data.test_fraction`` of each class's files (rounded,
at least one when the class has two or more) go to the test split, drawn with a
fixed seed (SPLIT_SEED, not the run's seed: every run of a folder tests on the
same images); the training images are put in a fixed random order (so that the
validation split, the last ``data.num_val`` of them, mixes the classes). Every image
goes through ``cs_nets.data.images.load_image``, as ``csnets predict`` reads it, to
``data.image_size`` squared.

Cache: the decoded images of all files are saved once as one uint8 .npy under
DIR/.cs_nets/, named by a hash of the image size, the conversion and every file's
relative path, size and modification time; any change to the files builds a new
one (old ones are removed). A FileLock makes a second process wait for the first
one's cache instead of decoding too. A folder that cannot be written is read
without a cache (a note says so). With data.storage uint8 the cache is memory-mapped
(``load_folder(memory_map=True)``): the training images are read from it batch by batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cs_nets.data.cifar10 import RawCifar
from cs_nets.data.images import load_image, walk_images
from cs_nets.data.locks import held_lock
from cs_nets.data.storage import ImageRows
from cs_nets.errors import ConfigError, DataError
from cs_nets.files.atomic import atomic_open

SPLIT_SEED = 0
CACHE_FOLDER = ".cs_nets"  # inside the data folder; hidden, so never taken for a class
CONVERSION = "images-v1"  # bump when load_image's conversion changes: old caches are then not used
MAX_CLASSES = 1000


@dataclass
class RawImages(RawCifar):
    """A RawCifar of a folder dataset: rows are (N, 3 S S) uint8 in CIFAR order, image_size = S."""

    image_size: int = 32


@dataclass
class Listing:
    """The files of a folder dataset: paths (relative to the folder), labels, and which are test files."""

    files: list
    labels: np.ndarray
    is_test: np.ndarray
    class_names: list


def cache_dir(folder) -> Path:
    """Where a folder dataset's caches (decoded images, features) live."""
    return Path(folder) / CACHE_FOLDER


def list_folder(folder: Path, test_fraction: float | None) -> Listing:
    """The files, labels and test membership of an ImageFolder-layout folder (module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.path {folder} is not a folder")
    split_dirs = [(folder / "train").is_dir(), (folder / "test").is_dir()]
    if all(split_dirs):
        if test_fraction is not None:
            raise ConfigError(f"data.test_fraction: {folder} has train/ and test/ subfolders, which give the "
                              f"test split; remove data.test_fraction")
        names = _class_names(folder / "train")
        test_names = _class_names(folder / "test")
        extra = sorted(set(test_names) - set(names))
        if extra:
            raise DataError(f"{folder}/test has class folder {extra[0]!r} that {folder}/train does not have")
        train_files, train_labels = _files_of(folder / "train", names)
        test_files, test_labels = _files_of(folder / "test", names)
        files = [f"train/{f}" for f in train_files] + [f"test/{f}" for f in test_files]
        labels = np.array(train_labels + test_labels, dtype=np.int64)
        is_test = np.arange(len(files)) >= len(train_files)
        return Listing(files, labels, is_test, names)
    if any(split_dirs) and test_fraction is None:
        which = "train/" if split_dirs[0] else "test/"
        raise DataError(f"{folder} has {which} but not {'test/' if split_dirs[0] else 'train/'}: give both, "
                        f"or class folders and data.test_fraction")
    if test_fraction is None:
        raise ConfigError(f"data.test_fraction: {folder} has no train/ and test/ subfolders; set "
                          f"data.test_fraction (e.g. 0.2) to hold out that share of each class for testing")
    names = _class_names(folder)
    files, label_list = _files_of(folder, names)
    labels = np.array(label_list, dtype=np.int64)
    return Listing(files, labels, stratified_test_mask(labels, test_fraction, SPLIT_SEED), names)


def count_classes(folder) -> int:
    """The class folders of a folder dataset, counted without reading images (2 if it cannot be listed:
    loading then names the problem). For estimates made before loading."""
    folder = Path(folder).expanduser()
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        folder = folder / "train"
    try:
        return max(2, sum(1 for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")))
    except OSError:
        return 2


def count_files(folder, test_fraction: float | None) -> tuple[int, int] | None:
    """(training files, test files) of a folder dataset, listed without reading an image, or None when
    it cannot be listed (loading then names the problem). For the memory estimate made before loading."""
    try:
        listing = list_folder(Path(folder).expanduser(), test_fraction)
    except (ConfigError, DataError):
        return None
    n_test = int(np.count_nonzero(listing.is_test))
    return len(listing.files) - n_test, n_test


def stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """(N,) bool: round(fraction * n_k) random files of each class k (at least 1 if n_k >= 2, at most n_k - 1)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        n = len(members)
        take = min(max(int(round(fraction * n)), 1 if n >= 2 else 0), max(n - 1, 0))
        mask[rng.permutation(members)[:take]] = True
    return mask


def _class_names(folder: Path) -> list[str]:
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError as err:
        raise DataError(f"cannot list {folder}: {err.strerror or err}") from None
    if len(names) < 2:
        raise DataError(f"{folder} has {len(names)} class folder(s); a classifier needs at least 2 "
                        f"(one subfolder per class, named for it)")
    if len(names) > MAX_CLASSES:
        raise DataError(f"{folder} has {len(names)} class folders, more than {MAX_CLASSES}")
    return names


def _files_of(folder: Path, names: list[str]) -> tuple[list[str], list[int]]:
    files, labels = [], []
    for k, name in enumerate(names):
        sub = folder / name
        if not sub.is_dir():
            continue  # a class the test split does not have
        for path, error in walk_images([sub], recursive=True):
            if error is not None:
                raise DataError(f"{path}: {error}")
            files.append(path.relative_to(folder).as_posix())
            labels.append(k)
    if not files:
        raise DataError(f"{folder} holds no image files ({', '.join('.' + s for s in ('png', 'jpg', '...'))})")
    return files, labels


# ------------------------------------------------------------------------- decoding and the cache


def load_folder(folder, image_size: int = 32, test_fraction: float | None = None, progress: bool = True,
                log=None, workers: int | None = None, memory_map: bool = False) -> RawImages:
    """The folder dataset at `folder` -> RawImages with X_*: (N, 3 S S) uint8 rows, y_*: (N,) int64.

    Decoded images come from the cache when the files have not changed (module docstring).
    memory_map: X_train is an ImageRows of the cache mapped from disk (np.load(mmap_mode="r")):
    the training images are not read into memory (data.storage uint8). The test rows are
    read either way. A folder that cannot hold a cache gives its decoded rows in memory.
    """
    log = log or (lambda message: None)
    folder = Path(folder).expanduser().absolute()
    listing = list_folder(folder, test_fraction)
    key = listing_key(folder, listing.files, image_size)
    cache = cache_dir(folder) / f"images-{image_size}-{key}.npy"
    shape = (len(listing.files), 3 * image_size * image_size)
    rows = _read_cache(cache, shape, memory_map)
    if rows is None:
        rows = _build_cache(folder, listing.files, image_size, cache, shape, progress, log, workers)
        mapped = _read_cache(cache, shape, memory_map=True) if memory_map else None
        rows = rows if mapped is None else mapped  # the file just written, mapped: the decoded copy goes
    train, test = training_order(listing), np.flatnonzero(listing.is_test)
    X_train = ImageRows(rows, train) if memory_map else rows[train]
    return RawImages(X_train, listing.labels[train], np.asarray(rows[test]), listing.labels[test],
                     listing.class_names, "folder", folder, image_size=image_size)


def training_order(listing: Listing) -> np.ndarray:
    """The training files' indices in a fixed random order (SPLIT_SEED).

    Files are listed class by class; the validation split is the last ``num_val``
    training images (as for CIFAR-10, whose batches are already shuffled), which in
    listing order would all be of the last class. The test split keeps listing order.
    """
    train = np.flatnonzero(~listing.is_test)
    return train[np.random.default_rng(SPLIT_SEED).permutation(len(train))]


def listing_key(folder: Path, files: list[str], image_size: int) -> str:
    """A hash of the conversion, the size and every file's relative path, byte size and mtime (ns)."""
    digest = hashlib.sha256(f"{CONVERSION}\n{image_size}\n".encode())
    for name in files:
        try:
            st = (folder / name).stat()
        except OSError as err:
            raise DataError(f"{folder / name}: {err.strerror or err}") from None
        digest.update(json.dumps([name, st.st_size, st.st_mtime_ns]).encode() + b"\n")
    return digest.hexdigest()[:24]


def _read_cache(cache: Path, shape, memory_map: bool = False) -> np.ndarray | None:
    """The cached rows, or None when absent or not exactly a uint8 array of `shape` (then it is rebuilt).

    memory_map: a read-only np.memmap of the file instead of a copy in memory. The cache is
    only ever replaced by a rename, never rewritten in place, so a mapping stays valid.
    """
    try:
        rows = np.load(cache, allow_pickle=False, mmap_mode="r" if memory_map else None)
    except (OSError, ValueError, EOFError):
        return None
    return rows if rows.dtype == np.uint8 and rows.shape == shape else None


def _build_cache(folder, files, image_size, cache, shape, progress, log, workers) -> np.ndarray:
    try:
        cache.parent.mkdir(exist_ok=True)
        writable = os.access(cache.parent, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        log(f"note: cannot write {cache.parent}: decoding {len(files)} images without a cache")
        return decode_files(folder, files, image_size, progress, workers)
    with held_lock(cache.with_suffix(".lock"), log, f"waiting for another process to decode {folder}"):
        rows = _read_cache(cache, shape)  # the other process may have built it meanwhile
        if rows is not None:
            return rows
        log(f"decoding {len(files)} images of {folder} to {image_size}x{image_size} (cached in {cache.parent})")
        rows = decode_files(folder, files, image_size, progress, workers)
        with atomic_open(cache, "wb") as f:
            np.save(f, rows, allow_pickle=False)
        for old in cache.parent.glob(f"images-{image_size}-*.npy"):  # caches of files that have changed
            if old != cache:
                old.unlink(missing_ok=True)
    return rows


def decode_files(folder: Path, files: list[str], image_size: int, progress: bool = False,
                 workers: int | None = None) -> np.ndarray:
    """Decode `files` (relative to `folder`) -> (N, 3 S S) uint8 CIFAR rows; DataError naming the first bad file."""
    rows = np.empty((len(files), 3, image_size, image_size), dtype=np.uint8)

    def one(i):
        try:
            rows[i] = load_image(folder / files[i], image_size).transpose(2, 0, 1)
        except DataError as err:
            return f"{folder / files[i]}: {err}"
        return None

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="img", desc="decoding", leave=False)
    errors = []
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for error in pool.map(one, range(len(files))):
            errors += [error] if error else []
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DataError(f"{len(errors)} image(s) of the dataset cannot be read: {errors[0]}{more}")
    return rows.reshape(len(files), -1)
