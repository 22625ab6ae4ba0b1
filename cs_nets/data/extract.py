"""Extract a downloaded .tar.gz without trusting it.

Every member is checked before anything is written: absolute paths, ``..``, links
and device files are refused. Where Python has it, tarfile's ``filter="data"`` checks
again. The files land in a temporary folder inside the destination that is renamed
into place at the end, so an interrupted run never leaves a half-extracted dataset
under the name that means "complete".
"""

import gzip
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath

from cs_nets.data.messages import one_line
from cs_nets.errors import DataError

TMP_PREFIX = ".extract-"
STALE_SECONDS = 3600  # a temporary folder this old was left by an interrupted run

# Errors tarfile and gzip raise for a damaged archive.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def check_member(member, archive):
    """Raise DataError unless ``member`` (a TarInfo) is a plain file or folder inside the target."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        problem = "has an absolute path"
    elif ".." in parts:
        problem = "climbs out of the target folder with '..'"
    elif member.issym() or member.islnk():
        problem = "is a link"
    elif not (member.isfile() or member.isdir()):
        problem = "is a device or special file"
    else:
        return
    raise DataError(f"refusing to extract {archive}: member '{name}' {problem}")


def safe_extract(archive, dest_dir, folder, validate=None):
    """Extract ``archive`` and move its top folder ``folder`` to ``dest_dir / folder``.

    validate: optional callable(path) run on the extracted folder before it is moved
    into place; it raises DataError when the content is not what was expected.
    Returns the final folder. An existing folder of that name is replaced.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    target = dest_dir / folder
    _remove_stale_temporaries(dest_dir)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest_dir))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    check_member(member, archive)
                # filter="data" exists from Python 3.12 and in 3.8.17+/3.9.17+/3.10.12+/3.11.4+.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **extra)
        except DataError:
            raise
        except getattr(tarfile, "FilterError", ()) as err:
            raise DataError(f"refusing to extract {archive}: {one_line(err)}") from None
        except ARCHIVE_ERRORS as err:
            raise DataError(f"{archive} is truncated or corrupt ({one_line(err)})") from None
        except OSError as err:
            raise DataError(f"could not extract {archive} into {dest_dir}: {one_line(err)}") from None
        extracted = tmp / folder
        if not extracted.is_dir():
            raise DataError(f"{archive} has no '{folder}/' folder")
        if validate is not None:
            validate(extracted)
        if target.exists():
            os.replace(target, tmp / "previous")  # removed with tmp below
        os.replace(extracted, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_temporaries(dest_dir):
    """Delete temporary folders that interrupted extractions left behind (not recent ones:
    another process may be extracting right now)."""
    for path in Path(dest_dir).glob(TMP_PREFIX + "*"):
        try:
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
