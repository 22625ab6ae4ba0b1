"""Write CIFAR-10 archives in both official layouts from arrays, for tests and mirrors.

The files are what the originals are, byte for byte in kind: the python layout holds
Python 2 pickles (protocol 2, str written as BINSTRING, byte-string keys ``data``,
``labels``, ``batch_label``, ``filenames``; the array reconstructed through
``numpy.core.multiarray._reconstruct``), which Python 3's pickle cannot produce, so
the opcodes are written by hand. The binary layout holds records of 1 label byte +
3072 pixel bytes and ``batches.meta.txt``. Archives are reproducible: same arrays,
same bytes, same MD5.
"""

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np

from cs_nets.data.batches import LAYOUTS
from cs_nets.data.cifar10 import CLASS_NAMES, OFFICIAL
from cs_nets.data.download import file_md5

MTIME = 1244992800  # 2009-06-14, when the official files were made
README = b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n"


def write_archive(out_dir, X_train, y_train, X_test, y_test, fmt="python", batches=5,
                  class_names=None):
    """Write ``out_dir/cifar-10-<fmt>.tar.gz`` holding the given arrays; return (path, md5 hex).

    X_*: (N, D) uint8 (D is 3072 for real data; other widths let tests write bad files),
    y_*: (N,) ints. The training rows are spread over ``batches`` files as evenly as
    possible (sizes may differ by one). class_names: 10 str, default the CIFAR-10 names.
    """
    layout = LAYOUTS[fmt]
    class_names = list(CLASS_NAMES if class_names is None else class_names)
    X_train, X_test = _pixels(X_train, "X_train"), _pixels(X_test, "X_test")
    y_train, y_test = _labels(y_train, len(X_train), "y_train"), _labels(y_test, len(X_test), "y_test")
    parts = np.array_split(np.arange(len(X_train)), batches)
    files = [(f"data_batch_{k}" + (".bin" if fmt == "binary" else ""), f"training batch {k} of {batches}",
              X_train[rows], y_train[rows]) for k, rows in enumerate(parts, start=1)]
    files.append((layout.test, "testing batch 1 of 1", X_test, y_test))
    members = {}
    for number, (name, label, X, y) in enumerate(files):
        if fmt == "binary":
            members[name] = binary_batch_bytes(X, y)
        else:
            image_names = [f"{_word(class_names, c)}_{number:02d}{i:05d}.png" for i, c in enumerate(y)]
            members[name] = python_batch_bytes(X, y, label, image_names)
    if fmt == "python":
        members[layout.meta] = python_meta_bytes(class_names, max(len(p) for p in parts))
    else:
        members[layout.meta] = binary_meta_bytes(class_names)
    members["readme.html"] = README
    path = Path(out_dir) / OFFICIAL[fmt].filename
    write_tar_gz(path, {f"{layout.folder}/{name}": data for name, data in members.items()})
    return path, file_md5(path)


def write_tar_gz(path, members):
    """Write a reproducible .tar.gz at ``path`` from {member name: bytes}; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def python_batch_bytes(X, y, batch_label, filenames):
    """A python-layout batch: the pickle Python 2's cPickle wrote for the originals."""
    out = [b"\x80\x02", b"}", _binput(1), b"("]
    out += [_str(b"batch_label"), _str(batch_label.encode())]
    out += [_str(b"labels"), b"]", _binput(2), *_appends([_int(int(v)) for v in y])]
    out += [_str(b"data"), _ndarray_u1(X)]
    out += [_str(b"filenames"), b"]", *_appends([_str(f.encode()) for f in filenames])]
    out += [b"u", b"."]
    return b"".join(out)


def python_meta_bytes(class_names, num_cases_per_batch, num_vis=3072):
    """``batches.meta``: {num_cases_per_batch, label_names, num_vis} as a Python 2 pickle."""
    out = [b"\x80\x02", b"}", _binput(1), b"("]
    out += [_str(b"num_cases_per_batch"), _int(num_cases_per_batch)]
    out += [_str(b"label_names"), b"]", _binput(2), *_appends([_str(n.encode()) for n in class_names])]
    out += [_str(b"num_vis"), _int(num_vis), b"u", b"."]
    return b"".join(out)


def binary_batch_bytes(X, y):
    """A binary-layout batch: one record per image, 1 label byte then the pixel bytes."""
    records = np.empty((len(X), 1 + X.shape[1]), dtype=np.uint8)
    records[:, 0] = y
    records[:, 1:] = X
    return records.tobytes()


def binary_meta_bytes(class_names):
    """``batches.meta.txt``: one class name per line, then an empty line."""
    return ("\n".join(class_names) + "\n\n").encode()


def _word(class_names, label):
    return class_names[label] if 0 <= label < len(class_names) else "image"


def _pixels(X, name):
    X = np.asarray(X)
    if X.dtype != np.uint8 or X.ndim != 2:
        raise ValueError(f"{name} must be a uint8 (N, D) array, got {X.dtype} {X.shape}")
    return X


def _labels(y, n, name):
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    return y


# Pickle protocol 2 opcodes, as cPickle in Python 2 wrote them.

def _binput(i):
    return b"q" + bytes([i])


def _str(data):
    """A Python 2 str (bytes): SHORT_BINSTRING or BINSTRING."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _int(value):
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _appends(items, batch=1000):
    """List items in MARK ... APPENDS groups of at most ``batch``, as pickle writes them."""
    out = []
    for start in range(0, len(items), batch):
        out += [b"(", *items[start:start + batch], b"e"]
    return out


def _ndarray_u1(X):
    """An (N, D) uint8 array, reduced the way NumPy 1.x pickled it in Python 2."""
    shape = _int(X.shape[0]) + _int(X.shape[1]) + b"\x86"
    dtype = (b"cnumpy\ndtype\n" + _binput(5) + _str(b"u1") + _int(0) + _int(1) + b"\x87R"
             + b"(" + _int(3) + _str(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _int(0) + b"tb")
    return b"".join([
        b"cnumpy.core.multiarray\n_reconstruct\n", _binput(3),
        b"cnumpy\nndarray\n", _binput(4), _int(0), b"\x85", _str(b"b"), b"\x87R",
        b"(", _int(1), shape, dtype, b"\x89", _str(np.ascontiguousarray(X).tobytes()), b"tb",
    ])
