"""CIFAR-10: where it lives, how to fetch it, and how to read it into arrays.

Data flows archive -> (extracted folder) -> RawCifar. Either official layout can be
read from its extracted folder or straight from its .tar.gz without extracting it.
"""

import hashlib
import os
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from cs_nets.data.batches import IMAGE_BYTES, LAYOUTS, check_declared_batches, max_rows, read_batch, read_meta
from cs_nets.data.download import expected_md5, fetch, file_md5, part_path
from cs_nets.data.extract import ARCHIVE_ERRORS, check_member, safe_extract
from cs_nets.data.locks import held_lock
from cs_nets.data.messages import one_line
from cs_nets.data.storage import ImageRows
from cs_nets.errors import ConfigError, DataError
from cs_nets.files.untrusted import check_regular, open_regular

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ArchiveSpec:
    """One official CIFAR-10 archive: its layout, where to get it and how to check it."""

    fmt: str  # "python" | "binary"
    url: str
    filename: str
    md5: str
    size: int  # bytes
    folder: str  # top folder inside the archive


_SITE = "https://www.cs.toronto.edu/~kriz/"
OFFICIAL = {
    "python": ArchiveSpec("python", _SITE + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                          "c58f30108f718f92721af3b95e74349a", 170_498_071, LAYOUTS["python"].folder),
    "binary": ArchiveSpec("binary", _SITE + "cifar-10-binary.tar.gz", "cifar-10-binary.tar.gz",
                          "c32a1d4ab5d03f1284b67883e8d87530", 170_052_171, LAYOUTS["binary"].folder),
}

# Per-file MD5s of the official python layout; describe() reports matches, loading
# does not require them (mirrors with other files must load).
OFFICIAL_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}



@dataclass
class RawCifar:
    """CIFAR-10 as loaded, before any preprocessing.

    X_train: (N, 3072) uint8, y_train: (N,) int64 in 0..9,
    X_test: (M, 3072) uint8, y_test: (M,) int64, class_names: 10 str.
    A row is 1024 red, 1024 green, 1024 blue bytes, each a 32x32 image row-major.
    Loaded with ``train_dtype`` float32/float64, X_train holds the same values 0..255
    as floats: a run on raw pixels normalizes that array in place, so the training
    images are never held twice (uint8 and float).
    With data.storage uint8 a folder's X_train is an ImageRows of its mapped cache
    (cs_nets.data.storage), which stands for the uint8 array without reading it.
    layout: "python", "binary", "python-archive", "binary-archive" or "synthetic".
    source: the folder or archive it came from.
    """

    X_train: np.ndarray | ImageRows
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    layout: str
    source: Path


# ---------------------------------------------------------------- where the data lives

def resolve_data_dir(option=None, config_value=None):
    """The data folder: ``option``, else ``config_value`` (config key ``data.dir``),
    else env ``CS_NETS_DATA``, else ``$XDG_CACHE_HOME/cs_nets`` (``~/.cache/cs_nets``).

    Empty strings count as unset. The folder is not created.
    """
    for candidate in (option, config_value, os.environ.get("CS_NETS_DATA")):
        if candidate:
            return Path(candidate).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser().absolute() / "cs_nets"


# ------------------------------------------------------------------------- download

def download_cifar10(data_dir, fmt="python", url=None, md5=None, force=False,
                     progress=True, log=None, *, timeout=(10.0, 60.0), retries=4, backoff=0.5):
    """Make sure ``data_dir`` holds the extracted ``fmt`` layout; return its folder.

    Does nothing (no network) when the folder is already complete, unless ``force``.
    An archive already in ``data_dir`` is verified and extracted without a download.
    url: a mirror instead of the official site (None: the official URL).
    md5: the expected archive MD5; None means the official one for the official URL,
    and no check (said in the log) for a mirror. This is the one place that decides.
    log: optional callable(str) for status lines. timeout/retries/backoff: see ``fetch``.
    Raises DownloadError (network, HTTP, checksum) or DataError (corrupt or unsafe archive).
    """
    spec = _spec(fmt)
    log = log or (lambda line: None)
    data_dir = Path(data_dir).expanduser()
    folder = data_dir / spec.folder
    if not force and _complete_files(folder, fmt) is not None:
        log(f"CIFAR-10 is ready in {folder}")
        return folder
    if not force and (partial := _partial_folder_error(folder, fmt)) is not None:
        raise partial
    expected = expected_md5(url, md5, spec.url, spec.md5, log)
    archive = data_dir / spec.filename
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the data folder {data_dir}: {one_line(err)}") from None
    # Several processes (a sweep's runs) may start at once on a fresh folder: one downloads
    # and extracts, the others wait here and then find the folder complete.
    with held_lock(data_dir / f".{spec.filename}.lock", log,
                   f"another process is downloading or extracting into {data_dir}; waiting") as lock:
        if force or _complete_files(folder, fmt) is None:  # else: done by the process we waited for
            _fetch_and_extract(spec, data_dir, archive, url, expected, force, progress, log,
                               timeout=timeout, retries=retries, backoff=backoff)
        if not force:
            # Complete now, so a newcomer returns before locking; a process already waiting
            # takes the lock next and finds the folder complete.
            Path(lock.lock_file).unlink(missing_ok=True)
    log(f"CIFAR-10 is ready in {folder}")
    return folder


def _fetch_and_extract(spec, data_dir, archive, url, expected, force, progress, log, **fetch_options):
    """Verify the archive in ``data_dir`` or download it, then extract it safely."""
    fmt = spec.fmt
    if force:
        part_path(archive).unlink(missing_ok=True)  # a forced fetch starts from zero
    if archive.exists() and not force:
        check_regular(archive, "archive")  # a FIFO here would block the checksum forever
        log(f"using {archive}")
        if expected is not None and (found := file_md5(archive)) != expected:
            raise DataError(f"{archive} has MD5 {found}, expected {expected}: "
                            f"delete it or download again with --force")
    else:
        source = url or spec.url
        fetch(source, archive, expected, progress=progress, log=log,
              hint=f"Put {spec.filename} at {archive} by hand, or use a mirror "
                   f"(csnets download --url, or data.url in a config).", **fetch_options)
    log(f"extracting {archive.name} into {data_dir}")
    try:
        safe_extract(archive, data_dir, spec.folder, validate=lambda path: _layout_files(path, fmt, archive))
    except DataError as err:
        raise DataError(f"{err}; delete {archive} or download again with --force") from None


def _spec(fmt):
    if fmt not in OFFICIAL:
        raise ConfigError(f"unknown CIFAR-10 format {fmt!r}: expected 'python' or 'binary'")
    return OFFICIAL[fmt]


def load_cifar10(data_dir, fmt=None, train_dtype="uint8"):
    """Read CIFAR-10 from ``data_dir`` into a RawCifar.

    fmt: "python", "binary" or None for the first present of: extracted python,
    extracted binary, python archive, binary archive. ``data_dir`` may also be an
    extracted folder itself. train_dtype: the dtype of X_train (uint8, float32 or
    float64); each batch file is cast into it as it is read, so no uint8 copy of the
    whole training set is made. Raises DataError when nothing is there or a file is bad.
    """
    kind, fmt, path = _locate(data_dir, fmt)
    if kind == "archive":
        return _load_archive(path, fmt, train_dtype)
    return _load_folder(path, fmt, train_dtype)


def ensure_cifar10(data_dir, fmt="python", url=None, md5=None, progress=True, log=None,
                   train_dtype="uint8", **fetch_options):
    """Download and extract the ``fmt`` layout if it is not there yet, then load it (see load_cifar10)."""
    download_cifar10(data_dir, fmt, url=url, md5=md5, progress=progress, log=log, **fetch_options)
    return load_cifar10(data_dir, fmt, train_dtype)


def _locate(data_dir, fmt=None):
    """(kind, fmt, path) of the data to load: kind is "folder" or "archive"."""
    data_dir = Path(data_dir).expanduser()
    fmts = [_spec(fmt).fmt] if fmt is not None else list(OFFICIAL)
    for f in fmts:
        for folder in (data_dir / OFFICIAL[f].folder, data_dir):
            if _complete_files(folder, f) is not None:
                return "folder", f, folder
    for f in fmts:
        for folder in (data_dir / OFFICIAL[f].folder, data_dir):
            if (partial := _partial_folder_error(folder, f)) is not None:
                raise partial
    for f in fmts:
        archive = data_dir / OFFICIAL[f].filename
        if archive.is_file():
            return "archive", f, archive
    what = f"the {fmt} layout of CIFAR-10" if fmt else "CIFAR-10"
    raise DataError(f"{what} is not in {data_dir}: run `csnets download` first "
                    f"(or point --data-dir at the folder that holds it)")


def _layout_files(folder, fmt, name=None):
    """(train files sorted by batch number, test file, meta file) of an extracted folder.

    Raises DataError naming what is missing (and ``name``, default the folder).
    """
    layout = LAYOUTS[fmt]
    folder = Path(folder)
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    train = sorted((k, n) for n in names if (k := layout.batch_number(n)) is not None)
    missing = [n for n in (layout.test, layout.meta) if n not in names]
    if not train:
        missing.insert(0, "data_batch_<k>")
    else:  # batches are numbered 1..K: a gap is a lost file, not a smaller mirror
        have = {k for k, _ in train}
        suffix = ".bin" if fmt == "binary" else ""
        missing[:0] = [f"data_batch_{k}{suffix}" for k in range(1, max(have) + 1) if k not in have][:5]
    if missing:
        raise DataError(f"{name or folder} is incomplete: {', '.join(missing)} missing")
    return [folder / n for _, n in train], folder / layout.test, folder / layout.meta


def _partial_folder_error(folder, fmt):
    """A DataError naming what is missing when ``folder`` holds some files of the ``fmt`` layout but not all
    (a file lost or deleted: downloading would not put it back, and a smaller set must not be used
    silently); None when the folder is complete or holds none of them."""
    layout = LAYOUTS[fmt]
    folder = Path(folder)
    try:
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        if not any(n in (layout.test, layout.meta) or layout.batch_number(n) is not None for n in names):
            return None
        _layout_files(folder, fmt)
    except OSError as err:
        return DataError(f"cannot read the data folder {folder}: {one_line(err)}")
    except DataError as err:
        return DataError(f"{err}: put the file back, or run `csnets download --force` (with the same "
                         f"--data-dir) to download and extract CIFAR-10 again")
    return None


def _complete_files(folder, fmt):
    try:
        return _layout_files(folder, fmt)
    except (DataError, OSError):
        return None


def _load_folder(folder, fmt, train_dtype="uint8"):
    train, test, meta = _layout_files(folder, fmt)
    declared = []
    X_train, y_train = _read_batches(fmt, train, train_dtype, declared)
    check_declared_batches([LAYOUTS[fmt].batch_number(p.name) for p in train], declared, folder)
    X_test, y_test = _read_batches(fmt, [test])
    with _open(meta) as f:
        class_names = read_meta(fmt, f, str(meta))
    return RawCifar(X_train, y_train, X_test, y_test, class_names, fmt, Path(folder))


def _read_batches(fmt, paths, dtype="uint8", declared=None):
    """Concatenate batch files into one preallocated (N, 3072) ``dtype`` and (N,) int64."""
    # File sizes bound the image count (exactly for binary, within ~60 rows per
    # python batch), so the arrays are filled in place instead of concatenated.
    capacity = sum(max_rows(fmt, p.stat().st_size) for p in paths)
    X = np.empty((capacity, IMAGE_BYTES), dtype=dtype)
    y = np.empty(capacity, dtype=np.int64)
    n = 0
    # One thread reads (and unpickles) the next file while this one copies the last into
    # place: at most two batches (2 x 30 MB) are held at once.
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(_read_file, fmt, paths[0], declared) if paths else None
        for i, path in enumerate(paths):
            Xb, yb = pending.result()
            pending = reader.submit(_read_file, fmt, paths[i + 1], declared) if i + 1 < len(paths) else None
            if n + len(Xb) > capacity:  # only a malformed file can claim more images than bytes
                raise DataError(f"{path} is corrupt: more images than its size allows")
            X[n:n + len(Xb)] = Xb  # casts to dtype (exact: 0..255)
            y[n:n + len(yb)] = yb
            n += len(Xb)
            del Xb, yb  # free this batch's buffer before the next one arrives
    return X[:n], y[:n]


def _read_file(fmt, path, declared=None):
    with _open(path) as f:
        return read_batch(fmt, f, str(path), declared)


def _open(path):
    return open_regular(path, "data file")


def _load_archive(archive, fmt, train_dtype="uint8"):
    """Read the ``fmt`` layout straight from its .tar.gz, streaming, without extracting."""
    layout = LAYOUTS[fmt]
    train, test, class_names, declared = {}, None, None, []
    try:
        with tarfile.open(archive, "r|*") as tar:  # stream: one pass of decompression
            for member in tar:
                check_member(member, archive)
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) < 2 or parts[-2] != layout.folder:
                    continue
                base, where = parts[-1], f"{member.name} in {archive}"
                k = layout.batch_number(base)
                if k is None and base not in (layout.test, layout.meta):
                    continue
                f = tar.extractfile(member)
                if base == layout.meta:
                    class_names = read_meta(fmt, f, where)
                elif base == layout.test:
                    test = read_batch(fmt, f, where)
                else:
                    X, y = read_batch(fmt, f, where, declared)
                    train[k] = (np.ascontiguousarray(X), y)  # binary rows are strided views
    except DataError:
        raise
    except ARCHIVE_ERRORS as err:
        raise DataError(f"{archive} is truncated or corrupt ({one_line(err)})") from None
    missing = [name for name, have in (("data_batch_<k>", train), (layout.test, test),
                                       (layout.meta, class_names)) if not have]
    if missing:
        raise DataError(f"{archive} is incomplete: {', '.join(missing)} missing")
    check_declared_batches(list(train), declared, archive)
    batches = [train[k] for k in sorted(train)]
    X_train = np.concatenate([b[0] for b in batches], dtype=train_dtype)
    y_train = np.concatenate([b[1] for b in batches])
    del batches, train
    X_test, y_test = np.ascontiguousarray(test[0]), test[1]
    return RawCifar(X_train, y_train, X_test, y_test, class_names, f"{fmt}-archive", Path(archive))


# ------------------------------------------------------------------------- reporting

def describe(data_dir):
    """What ``csnets info`` shows about ``data_dir``, as a JSON-able dict.

    data_dir; layouts: {fmt: {"extracted": folder or None, "archive": path or None}};
    layout, source: what was loaded; load_seconds; num_train; num_test; class_names;
    per_class: {"train": {name: count}, "test": {name: count}};
    checksums: {file relative to data_dir: {"expected", "found", "match"}} for the
    archives and extracted batch files present (expected and match are None when there
    is no official sum); fingerprint. Raises DataError when nothing loads.
    """
    data_dir = Path(data_dir).expanduser()
    layouts = {}
    for fmt, spec in OFFICIAL.items():
        folder, archive = data_dir / spec.folder, data_dir / spec.filename
        layouts[fmt] = {
            "extracted": str(folder) if _complete_files(folder, fmt) is not None else None,
            "archive": str(archive) if archive.is_file() else None,
        }
    start = time.perf_counter()
    raw = load_cifar10(data_dir)
    seconds = time.perf_counter() - start

    def per_class(y):
        return dict(zip(raw.class_names, np.bincount(y, minlength=len(raw.class_names)).tolist()))

    return {
        "data_dir": str(data_dir),
        "layouts": layouts,
        "layout": raw.layout,
        "source": str(raw.source),
        "load_seconds": round(seconds, 3),
        "num_train": len(raw.y_train),
        "num_test": len(raw.y_test),
        "class_names": list(raw.class_names),
        "per_class": {"train": per_class(raw.y_train), "test": per_class(raw.y_test)},
        "checksums": _checksums(data_dir, layouts),
        "fingerprint": data_fingerprint(raw),
    }


def _checksums(data_dir, layouts):
    """Found vs official MD5 of the archives and extracted batch files that are present."""
    paths = []
    for fmt, where in layouts.items():
        if where["archive"]:
            paths.append((Path(where["archive"]), OFFICIAL[fmt].md5))
        if where["extracted"]:
            train, test, _ = _layout_files(where["extracted"], fmt)
            paths += [(path, OFFICIAL_FILE_MD5.get(path.name)) for path in [*train, test]]
    report = {}
    for path, expected in paths:
        found = file_md5(path)
        key = path.relative_to(data_dir).as_posix() if path.is_relative_to(data_dir) else str(path)
        report[key] = {"expected": expected, "found": found,
                       "match": None if expected is None else found == expected}
    return report


def content_hash(*arrays):
    """A 32-hex-digit SHA-256 of the shapes, dtypes and every byte of ``arrays``.

    Reads the 150 MB of CIFAR-10 in about 0.1 s; used to key caches that must never
    serve results computed from other data.
    """
    digest = hashlib.sha256()
    for a in arrays:
        _hash_update(digest, a)
    return digest.hexdigest()[:32]


HASH_ROWS = 2048  # float pixel rows converted back to uint8 at a time for hashing (6 MB)


def _hash_update(digest, a):
    digest.update(f"{a.shape}{a.dtype}".encode())
    digest.update(np.ascontiguousarray(a).data)


def data_fingerprint(raw):
    """The content hash of a RawCifar: equal images give equal ids, whatever layout they came from,
    whatever ``train_dtype`` they were read into (float pixels are hashed as the uint8 they hold)
    and whether X_train is an array or an ImageRows (data.storage uint8): storage does not change it.
    """
    digest = hashlib.sha256()
    for a in (raw.X_train, raw.y_train, raw.X_test, raw.y_test):
        if not isinstance(a, np.ndarray) or (a.dtype.kind == "f" and raw.layout != "points"):
            # pixels 0..255 held as floats, or uint8 rows picked from a (mapped) array (data.storage
            # uint8): hashed as the uint8 array they stand for, a few rows at a time
            digest.update(f"{tuple(a.shape)}uint8".encode())
            for start in range(0, len(a), HASH_ROWS):
                digest.update(np.ascontiguousarray(a[start:start + HASH_ROWS]).astype(np.uint8, copy=False).data)
        else:
            _hash_update(digest, a)
    return digest.hexdigest()[:32]
