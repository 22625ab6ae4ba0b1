"""Feature arrays cached on disk as .npy, keyed by the data, the transforms and what they learned."""

import contextlib
import functools
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from cs_nets.errors import DataError
from cs_nets.features.extract import IMAGE_SIZE, check_out, check_pixels, extract_features
from cs_nets.features.spec import feature_dim, normalize_transforms
from cs_nets.features.views import MIRROR, view_images
from cs_nets.files.atomic import atomic_open
from cs_nets.files.untrusted import open_regular

# Part of every key: bump it when a feature definition changes so that stale
# caches written by older code are never reused.
FEATURES_VERSION = 1
FINITE_CHECK_ROWS = 4096  # rows checked at a time: a small temporary, whatever the cache's size


def cache_key(fingerprint, transforms, codebooks=None, image_size=IMAGE_SIZE):
    """Hex SHA-256 of the version, the data fingerprint, the normalized transforms
    (every parameter, defaults filled in), the digest of every fitted codebook and the
    image side (only when it is not CIFAR's 32, so that the keys of existing caches stay)."""
    transforms = normalize_transforms(transforms)
    payload = {
        "version": FEATURES_VERSION,
        "fingerprint": fingerprint,
        # weight scales values after standardization: the extracted values, and the key, do not depend on it
        "transforms": [_keyed(t) for t in transforms],
    }
    if image_size != IMAGE_SIZE:  # caches of different sizes never mix
        payload["image_size"] = image_size
    if any(t["type"] == "bow" for t in transforms):
        payload["codebooks"] = [None if c is None else c.digest() for c in (codebooks or [])]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _keyed(transform):
    """The parameters that shape a transform's values: not ``weight`` (it scales them after
    standardization), and ``symmetric`` only when true (so that the keys of older caches stay)."""
    return {k: v for k, v in transform.items() if k != "weight" and not (k == "symmetric" and not v)}


def cache_path(cache_dir, fingerprint, transforms, codebooks=None, image_size=IMAGE_SIZE):
    """Where ``cached_features`` keeps the array: ``<cache_dir>/features-<key[:24]>.npy``."""
    return Path(cache_dir) / f"features-{cache_key(fingerprint, transforms, codebooks, image_size)[:24]}.npy"


def cached_features(X, transforms, cache_dir, fingerprint, progress=True, log=None, codebooks=None,
                    image_size=IMAGE_SIZE, out=None, mirrored_out=None, mirrored_fingerprint=None):
    """``extract_features(X, transforms, codebooks=codebooks, image_size=image_size)``, read from or
    written to a cache file.

    X: (N, 3 S S) uint8 rows of S x S images, S = image_size.  fingerprint: non-empty string that identifies X (e.g. the
    split name and the checksums of its source files); the caller owns its meaning.
    codebooks: the fitted ``bow`` codebooks (see ``extract.check_codebooks``).
    log: callable(str) for warnings, or None to use ``warnings.warn``.
    out: a C-contiguous (N, F) float32 array the features are read or extracted into (None: a new one),
    so that no second copy of them is ever held.
    mirrored_out, mirrored_fingerprint: an (N, F) float32 array for the features of the images'
    left-right mirrors, and the string that identifies the mirrors' rows: they are cached in a file
    of their own (the one ``cached_features`` of the mirrored rows uses), and when neither file
    exists both are extracted in one pass (see ``extract_features``).
    Returns (N, F) float32 (`out` when given). A cache file that cannot be read or has the wrong
    shape/dtype is reported through `log` and recomputed; failing to write the
    cache is reported too but does not fail the call.
    """
    for name, value in (("fingerprint", fingerprint), ("mirrored_fingerprint", mirrored_fingerprint)):
        if (name == "fingerprint" or mirrored_out is not None) and (not isinstance(value, str) or not value):
            raise ValueError(f"{name}: got {value!r}, expected a non-empty string")
    transforms = normalize_transforms(transforms)
    check_pixels(X, image_size)
    out = check_out(out, (len(X), feature_dim(transforms, (image_size, image_size, 3))))
    targets = {"images": (cache_path(cache_dir, fingerprint, transforms, codebooks, image_size), out)}
    if mirrored_out is not None:
        targets["mirrors"] = (cache_path(cache_dir, mirrored_fingerprint, transforms, codebooks, image_size),
                              check_out(mirrored_out, out.shape))
    missing = {name for name, (path, array) in targets.items() if not _loaded(path, array, log)}
    if not missing:
        return out
    # Parallel runs on one data folder: one computes and writes, the others wait and read it.
    with contextlib.ExitStack() as locks:
        for path in sorted({targets[name][0] for name in missing}):  # one order: no two runs wait on each other
            locks.enter_context(_locked(path, log))
        missing = {name for name in missing if not _loaded(*targets[name], log, quiet=True)}  # written meanwhile?
        extract = functools.partial(extract_features, transforms=transforms, progress=progress,
                                    codebooks=codebooks, image_size=image_size)
        if missing == {"mirrors"}:
            mirrors = view_images(X.reshape(-1, 3, image_size, image_size), MIRROR)
            extract(np.ascontiguousarray(mirrors).reshape(len(X), -1), out=mirrored_out)
        elif missing:
            extract(X, out=out, mirrored_out=mirrored_out if "mirrors" in missing else None)
        for name in sorted(missing):
            path, array = targets[name]
            try:
                _save_atomic(path, array)
            except OSError as err:
                _warn(log, f"could not write feature cache {path}: {err}")
    return out


def _loaded(path, out, log, quiet=False):
    """True when the cache file `path` exists and was read into `out`; an unusable one gives False,
    reported through `log` unless `quiet`."""
    if not path.exists():
        return False
    try:
        _load(path, out)
        return True
    except (OSError, ValueError, EOFError) as err:
        if not quiet:
            _warn(log, f"feature cache {path} is unusable ({err}); recomputing it")
        return False


@contextlib.contextmanager
def _locked(path, log):
    """Hold the lock beside the cache file `path` (if its folder is writable); on leaving, the lock
    file goes when the cache file is there: from then on a newcomer finds it and never locks."""
    lock = _lock(path, log)
    try:
        yield
    finally:
        if lock is not None:
            if path.exists():
                Path(lock.lock_file).unlink(missing_ok=True)
            lock.release()


def _lock(path, log):
    """An acquired FileLock beside the cache file; None if the folder is not writable (the write
    will fail too, and say so)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path) + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if log is not None:
                log(f"another process is computing {path.name}; waiting")
            lock.acquire()
    except OSError:
        return None
    return lock


def _load(path, out):
    """Read the cached (N, F) float32 array at `path` into `out` (that shape and dtype) and return it.

    ValueError if the file holds another shape or dtype, is cut short, or has a value that
    is not finite (a cache file damaged, or written by a bug: it must never be trained on).
    The bytes go straight into `out`: no second copy of a large cache is held.
    """
    try:
        with open_regular(path, "feature cache") as f:  # a FIFO or device in its place must not block
            shape, fortran_order, dtype = _npy_header(f)
            if fortran_order or shape != out.shape or dtype != np.dtype("<f4"):
                raise ValueError(f"holds {shape} {dtype}, expected {out.shape} float32")
            if _read_into(f, memoryview(out).cast("B")) != out.nbytes or f.read(1):
                raise ValueError("is cut short or has bytes after its array")
    except DataError as err:
        raise ValueError(str(err)) from None
    for start in range(0, len(out), FINITE_CHECK_ROWS):
        if not np.isfinite(out[start:start + FINITE_CHECK_ROWS]).all():
            raise ValueError("holds values that are not finite (NaN or infinity)")
    return out


def _read_into(f, view):
    """Bytes read from `f` into `view` until it is full or the file ends (a read may return less than asked)."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _npy_header(f):
    """(shape, fortran_order, dtype) of the .npy file `f`, positioned at its data; ValueError if it is not one."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"is a .npy file of version {version}, expected 1.0 or 2.0")
    return readers[version](f)


def _save_atomic(path, array):
    # A reader never sees a half-written file, even if this process is killed mid-write.
    with atomic_open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _warn(log, message):
    if log is None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        log(message)


# ----------------------------------------------------------------------------- codebooks
# The learned codebook of a ``bow`` transform is cached too: the feature cache is keyed
# by its digest, so without this every run would spend k-means' seconds just to find
# that key. Keyed by what determines it: the training images and the parameters of
# fit_codebook (not stride, encoding or pooling, which only the encoder uses).

CODEBOOK_VERSION = 1  # bump when fit_codebook's result changes for the same inputs
CODEBOOK_PARAMS = ("words", "patch", "whiten", "samples", "iterations", "seed", "symmetric")


def codebook_path(cache_dir, fingerprint, transform, image_size=IMAGE_SIZE):
    """``<cache_dir>/codebook-<key[:24]>.npz`` for a normalized ``bow`` transform, a training-set fingerprint
    and the image side (in the key only when it is not 32, as in ``cache_key``)."""
    payload = {"version": CODEBOOK_VERSION, "fingerprint": fingerprint,
               "bow": _keyed({k: transform[k] for k in CODEBOOK_PARAMS})}
    if image_size != IMAGE_SIZE:
        payload["image_size"] = image_size
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"codebook-{key[:24]}.npz"


def cached_codebook(X_train, transform, cache_dir, fingerprint, log=None, image_size=IMAGE_SIZE):
    """``fit_codebook(X_train, ..., side=image_size)`` with the transform's parameters, read from or written
    to a cache file.

    X_train: (N, 3 S S) uint8 rows of S x S images (S = image_size), the training split;
    fingerprint: non-empty string naming exactly those rows (e.g. their content hash).
    A file that cannot be read, or holds misshapen or non-finite arrays, is reported in
    one line through `log` and the codebook is learned again (and the file replaced); a failed write is reported too.
    """
    from cs_nets.errors import ArgumentError
    from cs_nets.features.bow import Codebook, fit_codebook

    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError(f"fingerprint: got {fingerprint!r}, expected a non-empty string")
    params = {k: transform[k] for k in CODEBOOK_PARAMS}
    path = codebook_path(cache_dir, fingerprint, transform, image_size)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return Codebook.from_state(dict(arrays), params["patch"], params["words"], params["whiten"],
                                           params["symmetric"])
        except (OSError, ValueError, EOFError, ArgumentError) as err:
            _warn(log, f"codebook cache {path} is unusable ({err}); learning the codebook again")
    codebook = fit_codebook(X_train, **params, side=image_size)
    try:
        with atomic_open(path, "wb") as f:
            np.savez(f, **codebook.state())
    except OSError as err:
        _warn(log, f"could not write codebook cache {path}: {err}")
    return codebook
