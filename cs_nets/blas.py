"""Two BLAS operations NumPy does not expose: gemm that accumulates, and axpy.

    gemm(a, b, c, alpha, beta):  c = alpha * a @ b + beta * c   a: (M, K), b: (K, N), c: (M, N)
    axpy(alpha, x, y):           y += alpha * x                  x, y: same shape

np.matmul can only overwrite its output, and NumPy's elementwise loops run on one
core. With these two, a momentum step is written into the velocity by the backward
product itself (v = mu v - lr Xᵀ dZ: alpha=-lr, beta=mu) and finished by one
multi-threaded pass w += v, instead of a fresh gradient plus four single-core passes
over the weights (see cs_nets.optim).

Backend: the OpenBLAS that NumPy's wheels bundle (scipy-openblas, in ``numpy.libs``
or ``numpy/.dylibs``), called through ctypes: the library and thread pool np.matmul
already uses, so there is nothing to install. Where it is not found (a NumPy that
links another BLAS, such as conda's or a source build) or ``CS_NETS_BLAS=numpy`` is
set, the same operations run in NumPy: equal up to float rounding, slower.
``backend()`` says which.
Arrays BLAS cannot take as they are (other dtypes, non-contiguous, overlapping c) also
go through NumPy, so every call is safe.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

BLOCK_ELEMENTS = 1 << 16  # NumPy fallback: blocks of ~256 KB (float32), so temporaries stay in cache

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS enum values


class _OpenBLAS:
    """ctypes bindings of cblas_{s,d}gemm and cblas_{s,d}axpy in one shared library."""

    def __init__(self, path: str, prefix: str, suffix: str, int_type):
        lib = ctypes.CDLL(path)
        ptr, integer, order = ctypes.c_void_p, int_type, ctypes.c_int
        self.path = os.path.basename(path)
        self.max_int = 2 ** (8 * ctypes.sizeof(int_type) - 1) - 1  # larger sizes go to NumPy
        self.gemm, self.axpy = {}, {}
        for letter, dtype, real in (("s", np.float32, ctypes.c_float), ("d", np.float64, ctypes.c_double)):
            gemm = getattr(lib, f"{prefix}cblas_{letter}gemm{suffix}")
            gemm.argtypes = [order, order, order, integer, integer, integer, real, ptr, integer,
                             ptr, integer, real, ptr, integer]
            gemm.restype = None
            axpy = getattr(lib, f"{prefix}cblas_{letter}axpy{suffix}")
            axpy.argtypes = [integer, real, ptr, integer, ptr, integer]
            axpy.restype = None
            self.gemm[np.dtype(dtype)], self.axpy[np.dtype(dtype)] = gemm, axpy


def _find_numpy_openblas():
    """NumPy's bundled OpenBLAS as an _OpenBLAS, or None."""
    numpy_dir = os.path.dirname(np.__file__)
    candidates = sorted(glob.glob(os.path.join(numpy_dir + ".libs", "*scipy_openblas*"))
                        + glob.glob(os.path.join(numpy_dir, ".dylibs", "*scipy_openblas*")))
    # 64-bit-integer builds (what NumPy ships) name their symbols scipy_cblas_sgemm64_
    for path in candidates:
        for suffix, int_type in (("64_", ctypes.c_int64), ("", ctypes.c_int)):
            try:
                return _OpenBLAS(path, "scipy_", suffix, int_type)
            except (OSError, AttributeError):
                continue
    return None


_FOUND = _find_numpy_openblas()
_NUMPY_BY_DEFAULT = os.environ.get("CS_NETS_BLAS", "").lower() == "numpy"
_lib = None if _NUMPY_BY_DEFAULT else _FOUND


def backend() -> str:
    """'openblas (<library file>)' when NumPy's OpenBLAS is called directly, else 'numpy'."""
    return f"openblas ({_lib.path})" if _lib is not None else "numpy"


def use_numpy(enabled: bool | None = True) -> None:
    """True: NumPy implementations only; False: OpenBLAS when it was found;
    None: back to the choice made at import (CS_NETS_BLAS)."""
    global _lib
    if enabled is None:
        enabled = _NUMPY_BY_DEFAULT
    _lib = None if enabled else _FOUND


def scale_add(alpha: float, x, beta: float, y: np.ndarray) -> np.ndarray:
    """y = alpha * x + beta * y in place, in NumPy; returns y. beta == 0 ignores y's old
    values (even NaN). x: an array broadcastable to y.

    Large arrays go block by block, so the temporary alpha * x is one small block (in cache).
    """
    for x_part, y_part in _blocks(np.asarray(x), y):
        if beta == 0:
            np.multiply(x_part, alpha, out=y_part)
            continue
        if beta != 1:
            y_part *= beta
        y_part += x_part if alpha == 1 else np.multiply(x_part, alpha)
    return y


def _blocks(x: np.ndarray, y: np.ndarray):
    """Matching flat views of x and y, BLOCK_ELEMENTS long; or (x, y) whole when they are
    small, not both contiguous, of different shapes, or overlapping (NumPy then reads all
    of x before y changes)."""
    whole = (y.size <= BLOCK_ELEMENTS or x.shape != y.shape or not x.flags.c_contiguous
             or not y.flags.c_contiguous or (x is not y and np.may_share_memory(x, y)))
    if whole:
        yield x, y
        return
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)  # views
    for start in range(0, flat_y.size, BLOCK_ELEMENTS):
        yield flat_x[start:start + BLOCK_ELEMENTS], flat_y[start:start + BLOCK_ELEMENTS]


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """c = alpha * a @ b + beta * c, in place; returns c.

    a: (M, K), b: (K, N), c: (M, N) C-contiguous; a and b may be transposed views (a.T of
    a C-contiguous array costs nothing). beta == 0 ignores c's old values, as BLAS does.
    """
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2 or a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"gemm: shapes {a.shape} @ {b.shape} do not give {c.shape}")
    alpha, beta = float(alpha), float(beta)
    call = _lib.gemm.get(c.dtype) if _lib is not None else None
    if call is not None and min(a.shape + b.shape) > 0 and _blas_ready(c, a, b) and c.size <= _lib.max_int:
        (trans_a, ld_a), (trans_b, ld_b) = _layout(a), _layout(b)
        if trans_a and trans_b:  # both usable as they are
            (m, k), n = a.shape, b.shape[1]
            call(_ROW_MAJOR, trans_a, trans_b, m, n, k, alpha, a.ctypes.data, ld_a,
                 b.ctypes.data, ld_b, beta, c.ctypes.data, c.shape[1])
            return c
    if beta == 0:
        np.matmul(a, b, out=c)  # NumPy buffers inputs that overlap c
        if alpha != 1:
            c *= alpha
        return c
    return scale_add(alpha, np.matmul(a, b), beta, c)


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y += alpha * x in place (all cores under OpenBLAS); returns y. x, y: same shape."""
    if x.shape != y.shape:
        raise ValueError(f"axpy: shapes {x.shape} and {y.shape} differ")
    alpha = float(alpha)
    call = _lib.axpy.get(y.dtype) if _lib is not None else None
    contiguous = x.flags.c_contiguous and y.flags.c_contiguous
    if (call is not None and contiguous and x.dtype == y.dtype and 0 < y.size <= _lib.max_int
            and _aligned(x, y) and y.flags.writeable and (x is y or not np.may_share_memory(x, y))):
        call(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
        return y
    return scale_add(alpha, x, 1.0, y)


def _blas_ready(c, a, b) -> bool:
    """True if c, a, b can go to BLAS as they are: one dtype, c contiguous and not overlapping."""
    return (a.dtype == b.dtype == c.dtype and c.flags.c_contiguous and c.flags.writeable
            and _aligned(a, b, c) and not np.may_share_memory(c, a) and not np.may_share_memory(c, b))


def _aligned(*arrays) -> bool:
    return all(m.flags.aligned for m in arrays)


def _layout(m: np.ndarray):
    """(CBLAS transpose flag, leading dimension) of a 2-D array in row-major terms, or (0, 0)
    when neither it nor its transpose is contiguous."""
    item = m.itemsize
    rows, cols = m.shape
    if m.strides[1] == item and m.strides[0] >= max(1, cols) * item and m.strides[0] % item == 0:
        return _NO_TRANS, m.strides[0] // item
    if m.strides[0] == item and m.strides[1] >= max(1, rows) * item and m.strides[1] % item == 0:
        return _TRANS, m.strides[1] // item
    return 0, 0
