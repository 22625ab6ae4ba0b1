"""Two BLAS operations NumPy does not expose, for the trainer's fused update (cs_nets.training._fused_step):

    gemm(a, b, c, alpha, beta)   c = alpha * a @ b + beta * c     a: (M, K), b: (K, N), c: (M, N)
    axpy(alpha, x, y)            y += alpha * x                   x, y: same shape

np.matmul can only overwrite its output, and each NumPy elementwise operation is one
more single-core pass over memory. With these, the backward product writes a weight's
update straight into the array the update rule keeps (the velocity, or the weights),
and what remains of the rule is one or two passes that OpenBLAS runs on every core.

Backend: the OpenBLAS that NumPy itself is linked to, called through ctypes: the library
and thread pool np.matmul already uses, so there is nothing to install. It is found
through public reports, never through file names:

  - NumPy's build report (``np.show_config(mode="dicts")``) says whether its BLAS is an
    OpenBLAS, its version and whether it uses 64-bit integers (USE64BITINT);
  - threadpoolctl (as scikit-learn uses it) lists the BLAS libraries loaded in the
    process, each with its file and version: the one of NumPy's version is NumPy's;
  - the library itself tells its symbol names (tried: scipy_cblas_sgemm64_ in NumPy's
    wheels, scipy_cblas_sgemm in SciPy's, cblas_sgemm64_ and cblas_sgemm in other
    builds) and, through its openblas_get_config, its integer width;
  - a tiny product and axpy checked against exact results confirm the binding.

Where NumPy uses another BLAS (MKL, Accelerate, BLIS...) or ``CS_NETS_BLAS=numpy`` is
set, the same operations run in NumPy: equal up to float rounding, slower. ``backend()``
says which runs, ``status()`` why. Arrays BLAS cannot take as they are (other dtypes,
non-contiguous, overlapping outputs) also go through NumPy, so every call is safe.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from cs_nets.errors import ArgumentError

BLOCK_ELEMENTS = 1 << 16  # NumPy fallback: blocks of ~256 KB (float32), so temporaries stay in cache

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS enum values
# (prefix, suffix) of the symbol names, e.g. scipy_cblas_sgemm64_: NumPy's wheels, SciPy's
# wheels, 64-bit-integer distribution builds, plain builds
SYMBOL_AFFIXES = (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", ""))


class BindError(Exception):
    """An OpenBLAS library that cannot be called safely through ctypes."""


class _OpenBLAS:
    """ctypes bindings of cblas_{s,d}{gemm,axpy} in one OpenBLAS shared library."""

    def __init__(self, filepath: str, version: str | None):
        try:
            lib = ctypes.CDLL(filepath)
        except OSError as err:
            raise BindError(f"{filepath}: cannot be loaded ({err})") from None
        for prefix, suffix in SYMBOL_AFFIXES:
            names = [f"{prefix}openblas_get_config{suffix}"] + [
                f"{prefix}cblas_{letter}{op}{suffix}" for letter in "sd" for op in ("gemm", "axpy")]
            if all(hasattr(lib, name) for name in names):
                break
        else:
            tried = ", ".join(f"{p}cblas_sgemm{s}" for p, s in SYMBOL_AFFIXES)
            raise BindError(f"{os.path.basename(filepath)} exports none of {tried} (with axpy)")
        get_config = getattr(lib, names[0])
        get_config.restype = ctypes.c_char_p
        self.config = (get_config() or b"").decode("ascii", "replace")
        # the library says its integer width: a wrong guess would pass garbage sizes
        int_type = ctypes.c_int64 if "USE64BITINT" in self.config.split() else ctypes.c_int
        self.filepath, self.version = filepath, version
        self.symbols = f"{prefix}cblas_*{suffix}"
        self.int_bits = 8 * ctypes.sizeof(int_type)
        self.max_int = 2 ** (self.int_bits - 1) - 1  # larger sizes go to NumPy
        ptr, n, enum = ctypes.c_void_p, int_type, ctypes.c_int
        self.gemm: dict[np.dtype, Any] = {}  # dtype -> the ctypes function
        self.axpy: dict[np.dtype, Any] = {}
        for letter, dtype, real in (("s", np.float32, ctypes.c_float), ("d", np.float64, ctypes.c_double)):
            signatures = {
                "gemm": (self.gemm, [enum, enum, enum, n, n, n, real, ptr, n, ptr, n, real, ptr, n]),
                "axpy": (self.axpy, [n, real, ptr, n, ptr, n]),
            }
            for op, (table, argtypes) in signatures.items():
                function = getattr(lib, f"{prefix}cblas_{letter}{op}{suffix}")
                function.argtypes, function.restype = argtypes, None
                table[np.dtype(dtype)] = function
        self._check()

    def _check(self):
        """Run each function once on tiny arrays with exact results (small integers)."""
        for dtype in self.gemm:
            a = np.array([[1, 2, 3], [4, 5, 6]], dtype)
            c = np.ones((2, 2), dtype)
            self.gemm[dtype](_ROW_MAJOR, _NO_TRANS, _TRANS, 2, 2, 3, 2.0, a.ctypes.data, 3,
                             a.ctypes.data, 3, -1.0, c.ctypes.data, 2)  # 2 a aᵀ - c
            x, y = np.array([1, 2, 3], dtype), np.array([4, 5, 6], dtype)
            self.axpy[dtype](3, 2.0, x.ctypes.data, 1, y.ctypes.data, 1)  # y = 2x + y
            if not (np.array_equal(c, [[27, 63], [63, 153]]) and np.array_equal(y, [6, 9, 12])):
                raise BindError(f"{os.path.basename(self.filepath)} ({self.symbols}, {self.int_bits}-bit "
                                f"integers) computed wrong results in a self-check")


def numpy_blas_report() -> dict:
    """NumPy's own account of the BLAS it was built with: {"name": "scipy-openblas",
    "version": ..., "openblas configuration": ...}; {} if this NumPy gives none."""
    try:
        report = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError, ValueError):  # NumPy < 1.26 has no mode="dicts"
        return {}
    return dict(report) if isinstance(report, dict) else {}


def loaded_blas_libraries() -> list[dict]:
    """threadpoolctl's record of every BLAS library loaded in this process (filepath,
    internal_api, version, num_threads...)."""
    from threadpoolctl import threadpool_info  # ~20 ms to import: only when first needed

    return [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]


def find_openblas(report: dict, libraries: list[dict]):
    """(binding, reason): NumPy's OpenBLAS bound through ctypes, or None and why not.

    report: numpy_blas_report(); libraries: loaded_blas_libraries().
    """
    name, version = str(report.get("name") or "unknown"), report.get("version")
    if "openblas" not in name.lower():
        return None, f"NumPy reports its BLAS as {name}, not an OpenBLAS"
    config = str(report.get("openblas configuration") or "")
    candidates = [lib for lib in libraries if lib.get("internal_api") == "openblas"
                  and (version is None or lib.get("version") == version)]
    if not candidates:
        seen = ", ".join(f"{lib.get('internal_api')} {lib.get('version')}" for lib in libraries) or "none"
        return None, (f"NumPy reports {name} {version}, but threadpoolctl lists no OpenBLAS of that "
                      f"version in this process (loaded BLAS: {seen})")
    failures = []
    for lib in candidates:
        try:
            binding = _OpenBLAS(lib["filepath"], lib.get("version"))
        except BindError as err:
            failures.append(str(err))
            continue
        if config and ("USE64BITINT" in config.split()) != (binding.int_bits == 64):
            failures.append(f"{os.path.basename(lib['filepath'])}: {binding.int_bits}-bit integers, "
                            f"but NumPy's OpenBLAS is configured as {config!r}")
            continue
        return binding, f"NumPy reports {name} {version}"
    return None, f"NumPy reports {name} {version}, but it cannot be bound: " + "; ".join(failures)


_found: tuple[Any, str] = (None, "")  # (binding or None, reason), after the first use
_NUMPY_BY_DEFAULT = os.environ.get("CS_NETS_BLAS", "").lower() == "numpy"
_numpy_only = _NUMPY_BY_DEFAULT


def _openblas():
    """The binding in use, or None (NumPy fallback)."""
    global _found
    if _numpy_only:
        return None
    if not _found[1]:
        _found = find_openblas(numpy_blas_report(), loaded_blas_libraries())
    return _found[0]


def backend() -> str:
    """'openblas (<library file>)' when NumPy's OpenBLAS is called directly, else 'numpy'."""
    lib = _openblas()
    return f"openblas ({os.path.basename(lib.filepath)})" if lib is not None else "numpy"


def status() -> str:
    """One line: which backend runs and why (the library, its symbols, or the reason for NumPy)."""
    lib = _openblas()
    if lib is not None:
        return (f"openblas: {os.path.basename(lib.filepath)} {lib.version}, symbols {lib.symbols}, "
                f"{lib.int_bits}-bit integers ({_found[1]})")
    if _numpy_only:
        return "numpy: requested (CS_NETS_BLAS=numpy or use_numpy())"
    return f"numpy: {_found[1]}"


def library_info() -> dict | None:
    """threadpoolctl's current record of the OpenBLAS in use (num_threads, architecture...), or None."""
    lib = _openblas()
    if lib is None:
        return None
    same = [info for info in loaded_blas_libraries() if info.get("filepath") == lib.filepath]
    return same[0] if same else None


def use_numpy(enabled: bool | None = True) -> None:
    """True: NumPy implementations only; False: NumPy's OpenBLAS when it can be bound;
    None: back to the default (CS_NETS_BLAS)."""
    global _numpy_only
    _numpy_only = _NUMPY_BY_DEFAULT if enabled is None else bool(enabled)


# ---------------------------------------------------------------------- the operations


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """c = alpha * a @ b + beta * c, in place; returns c.

    a: (M, K), b: (K, N), c: (M, N) C-contiguous; a and b may be transposed views (a.T of
    a C-contiguous array costs nothing). beta == 0 ignores c's old values, as BLAS does.
    """
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2 or a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise ArgumentError(f"gemm: shapes {a.shape} @ {b.shape} do not give {c.shape}")
    alpha, beta = float(alpha), float(beta)
    lib = _openblas()
    call = lib.gemm.get(c.dtype) if lib is not None else None
    if call is not None and min(a.shape + b.shape) > 0 and _blas_ready(c, a, b) and c.size <= lib.max_int:
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
        raise ArgumentError(f"axpy: shapes {x.shape} and {y.shape} differ")
    alpha = float(alpha)
    lib = _openblas()
    call = lib.axpy.get(y.dtype) if lib is not None else None
    contiguous = x.flags.c_contiguous and y.flags.c_contiguous
    if (call is not None and contiguous and x.dtype == y.dtype and 0 < y.size <= lib.max_int
            and _aligned(x, y) and y.flags.writeable and (x is y or not np.may_share_memory(x, y))):
        call(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
        return y
    return scale_add(alpha, x, 1.0, y)


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
