"""Fetch one file over HTTP: stream, retry, resume, verify, then rename into place.

The bytes go to ``<dest>.part``. A broken transfer is resumed with a Range request
(from zero again when the server answers 200 instead of 206). Connection errors,
timeouts and 5xx answers are retried with exponential backoff. The MD5 is checked
before the file takes its final name, so ``dest`` only ever exists when it is whole.
"""

import hashlib
import os
import re
import sys
import time
from pathlib import Path

from cs_nets.data.messages import one_line
from cs_nets.errors import ConfigError, DataError, DownloadError

# Small reads: when a connection breaks, the bytes of the read in progress are lost,
# so this bounds what a resume has to fetch again.
CHUNK_BYTES = 1 << 16


def expected_md5(url, md5, official_url: str, official_md5: str, log) -> str | None:
    """The MD5 to check an archive against (lowercase hex): ``md5`` when given, the official MD5
    for the official URL, else None (a mirror given without one: said in the log, not verified)."""
    if md5 is None:
        if url is None or url == official_url:
            return official_md5
        log(f"no MD5 given for {url}: the archive will not be verified")
        return None
    md5 = str(md5).strip().lower()
    if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        raise ConfigError(f"md5 must be 32 hex digits, got {md5!r}")
    return md5


class _Retryable(Exception):
    """A failure worth another attempt (network trouble, 5xx, short body)."""


class _Fatal(Exception):
    """A failure another attempt will not fix (4xx, unexpected answer)."""


def file_md5(path, chunk_bytes=1 << 20):
    """The MD5 hex digest of the file at ``path``, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def part_path(dest):
    """Where the bytes of ``dest`` accumulate until they are complete and verified."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def fetch(url, dest, md5=None, *, progress=True, log=None, timeout=(10.0, 60.0),
          retries=4, backoff=0.5, hint=""):
    """Download ``url`` to ``dest`` (a path), resuming ``dest.part`` if one is there.

    md5: expected hex digest, or None to skip the check. timeout: (connect, read) seconds.
    retries: extra attempts after the first; retry k (1, 2, ...) waits ``backoff * 2**(k-1)`` s.
    hint: sentence appended to network failures (what the user can do instead).
    Returns ``dest``. Raises DownloadError (network, HTTP status, checksum).
    """
    import requests  # imported here: it takes ~0.1 s and only downloads need it

    dest = Path(dest)
    part = part_path(dest)
    log = log or (lambda line: None)
    reason = None
    log(f"downloading {url} to {dest}")
    with requests.Session() as session:
        for attempt in range(retries + 1):
            if attempt:
                delay = min(backoff * 2 ** (attempt - 1), 60.0)
                log(f"retrying in {delay:g} s ({reason})")
                time.sleep(delay)
            try:
                _transfer(session, url, part, progress, log, timeout)
                break
            except _Retryable as err:
                reason = str(err)
            except _Fatal as err:
                raise DownloadError(f"cannot download {url}: {err}. {hint}".strip()) from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as err:
                reason = _network_reason(err)
            except requests.RequestException as err:  # a malformed URL and the like
                raise DownloadError(f"cannot download {url}: {one_line(err)}") from None
        else:
            raise DownloadError(f"cannot download {url}: {reason}. {hint}".strip())
    if md5 is not None:
        found = file_md5(part)
        if found != md5.lower():
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: expected MD5 {md5.lower()}, found {found}; "
                f"the partial file was removed"
            )
    os.replace(part, dest)
    return dest


def _transfer(session, url, part, progress, log, timeout):
    """One attempt: append the rest of ``url`` to ``part``. Raises _Retryable or _Fatal."""
    offset = part.stat().st_size if part.exists() else 0
    # identity: the archive must arrive byte for byte, never re-decoded by requests.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status >= 500:
            raise _Retryable(f"HTTP {status} {response.reason}")
        if offset and (status == 416 or (status == 206 and _range_start(response) != offset)):
            part.unlink()  # the server cannot continue our partial file: start over
            raise _Retryable(f"HTTP {status}: the server could not resume at byte {offset}")
        if status not in (200, 206):
            raise _Fatal(f"HTTP {status} {response.reason}")
        if offset and status == 206:
            log(f"resuming at byte {offset}")
            mode = "ab"
        else:
            if offset:
                log("the server ignored the Range request; restarting from zero")
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length", "")
        expected = int(length) if length.isdigit() else None
        received = _stream_to(response, part, mode, offset, expected, progress)
    if expected is not None and received < expected:
        raise _Retryable(f"connection closed after {offset + received} bytes")


def _stream_to(response, part, mode, offset, expected, progress):
    """Write the body of ``response`` to ``part``; return the number of bytes received."""
    from tqdm import tqdm

    total = offset + expected if expected is not None else None
    # Bytes on stderr, only for a person watching a terminal.
    show = progress and _is_terminal(sys.stderr)
    received = 0
    try:
        f = open(part, mode)
    except OSError as err:
        raise DataError(f"cannot write {part}: {one_line(err)}") from None
    with f, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=part.name[: -len(".part")], file=sys.stderr, disable=not show,
                 leave=False) as bar:
        for chunk in response.iter_content(CHUNK_BYTES):
            try:
                f.write(chunk)
            except OSError as err:
                raise DataError(f"cannot write {part}: {one_line(err)}") from None
            received += len(chunk)
            bar.update(len(chunk))
    return received


def _range_start(response):
    """First byte of a 206 answer, from ``Content-Range: bytes START-END/TOTAL`` (or None)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _network_reason(err):
    """A short cause for a requests exception, e.g. "[Errno 111] Connection refused"."""
    import requests

    if isinstance(err, requests.Timeout):
        return "the connection timed out"
    match = re.search(r"\[Errno -?\d+\][^'\")]*", str(err))
    if match:
        return match.group(0).strip()
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection broke during the transfer"
    return one_line(err)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
