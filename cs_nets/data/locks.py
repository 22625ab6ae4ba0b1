"""One exclusive file lock between processes that build the same files (a download, a decoded-image cache)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from cs_nets.errors import DataError


@contextmanager
def held_lock(path: Path, log, waiting: str):
    """Hold an exclusive FileLock on `path` (the OS releases it if the process dies); log `waiting` once if we wait."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(waiting)
            lock.acquire()
    except OSError as err:
        raise DataError(f"cannot lock {path}: {err.strerror or err}") from None
    try:
        yield lock
    finally:
        lock.release()
