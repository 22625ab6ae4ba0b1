"""Read text, JSON and .npy data that nobody vouches for: every limit is checked before allocating.

A run directory, a checkpoint or a config may come from anywhere, so the readers
here bound what they accept (bytes on disk, JSON nesting, array sizes declared
in a header) and fail with one line (``DataError``, or the ``error`` class the
caller names) instead of RecursionError, MemoryError or UnicodeDecodeError.
``clip`` makes the values quoted in messages short, however big the value is.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from pathlib import Path

import numpy as np

from cs_nets.errors import DataError

MAX_JSON_DEPTH = 64  # summaries and checkpoint metadata nest 4 levels; json.loads recurses per level
CLIP_CHARS = 100

_repr = reprlib.Repr()  # attributes rather than keywords: keywords need Python 3.12
_repr.maxlevel, _repr.maxdict, _repr.maxlist, _repr.maxtuple = 3, 6, 6, 6
_repr.maxstring, _repr.maxlong, _repr.maxother = 60, 40, 60

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def clip(value, limit: int = CLIP_CHARS) -> str:
    """A short repr of ``value`` for an error message: at most ``limit`` characters.

    reprlib stops at a few items per level and a few levels, so even a structure of a
    billion shared lists is described in microseconds (plain repr would expand it).
    """
    text = _repr.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def clip_text(text: object, limit: int = 300) -> str:
    """``str(text)`` itself (no quotes; an exception's message) cut to ``limit`` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of the JSON ``text`` nest (0 for a scalar).

    Counts brackets outside string literals with NumPy, so a hostile ``[[[[...`` of a
    million levels is measured without recursing.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def loads_json(text: str, what: str, max_depth: int = MAX_JSON_DEPTH, error=DataError):
    """``json.loads(text)`` or ``error`` naming ``what``: invalid JSON, or nested deeper than ``max_depth``."""
    depth = json_depth(text)
    if depth > max_depth:
        raise error(f"{what} nests {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:  # ValueError also covers ints of more than 4300 digits
        raise error(f"{what} is not valid JSON ({clip_text(err, 120)})") from None


def read_text(path, what: str, max_bytes: int, error=DataError) -> str:
    """The UTF-8 text of the file at ``path`` (a leading BOM dropped); ``error`` if it is larger than
    ``max_bytes``, unreadable or not UTF-8."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than {format_bytes(max_bytes)}: refused")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise error(f"{path}:{line}: {what} is not UTF-8 text "
                    f"(byte 0x{data[err.start]:02x} at offset {err.start})") from None


def read_npy_header(f, what: str, allowed_dtypes, max_bytes: int):
    """Read the header of a .npy stream ``f`` and check it; return (shape, dtype, data bytes).

    Refuses (DataError) other format versions, Fortran order, a dtype not in
    ``allowed_dtypes`` (dtypes, or a predicate on the dtype; object dtypes are never allowed) and a
    declared size above ``max_bytes``. Nothing but the header is read, so a header that
    claims terabytes costs nothing. ``f`` is left at the first data byte.
    """
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version} is not supported")
    except Exception as err:  # numpy parses the header with ast and tokenize: many exception types
        raise DataError(f"{what} is not a valid .npy array ({type(err).__name__}: {clip_text(err, 120)})") from None
    if fortran:
        raise DataError(f"{what}: Fortran-ordered arrays are not accepted")
    allowed = allowed_dtypes(dtype) if callable(allowed_dtypes) else dtype in [np.dtype(d) for d in allowed_dtypes]
    if dtype.hasobject or not allowed:
        expected = "" if callable(allowed_dtypes) else f" (expected {', '.join(map(str, allowed_dtypes))})"
        raise DataError(f"{what}: dtype {clip_text(dtype, 60)} is not accepted{expected}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise DataError(f"{what} declares shape {clip(shape)}, {format_bytes(nbytes)}: "
                        f"more than the {format_bytes(max_bytes)} allowed")
    return tuple(shape), dtype, nbytes


def read_into(f, out: np.ndarray, what: str) -> np.ndarray:
    """Fill the C-contiguous array ``out`` with the next ``out.nbytes`` bytes of ``f``; DataError if short."""
    view = memoryview(out.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # ndarray is a buffer
    filled = 0
    while filled < len(view):
        chunk = f.read(min(len(view) - filled, 1 << 24))
        if not chunk:
            raise DataError(f"{what} is truncated: {filled} of {len(view)} data bytes")
        view[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    return out


def load_npy(path, what: str, allowed_dtypes, max_bytes: int) -> np.ndarray:
    """A .npy file as an array, its header checked (``read_npy_header``) and its size matching the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, dtype, nbytes = read_npy_header(f, what, allowed_dtypes, max_bytes)
            left = path.stat().st_size - f.tell()
            if left != nbytes:
                raise DataError(f"{what} declares {nbytes} data bytes but holds {left}")
            return read_into(f, np.empty(shape, dtype), what)
    except OSError as err:
        raise DataError(f"cannot read {what}: {err.strerror or err}") from None


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
