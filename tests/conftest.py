"""Shared fixtures: a real HTTP server that serves small CIFAR-10 archives.

``cifar_server`` runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a
thread, serving a per-test folder that starts with both small archives (python and binary
layout, written by ``tests/archive_writer.py`` from a synthetic dataset)::

    def test_something(cifar_server, tmp_path):
        url = cifar_server.url_for("cifar-10-python.tar.gz")
        md5 = cifar_server.md5["cifar-10-python.tar.gz"]
        download_cifar10(tmp_path, url=url, md5=md5, progress=False)
        assert len(cifar_server.requests) == 1
        assert cifar_server.dataset.X_train.shape == (503, 3072)   # what the archives hold

Interface:
    url_for(name) -> str          URL of a file in ``root``
    root: Path                    the served folder; drop more files in it
    md5: dict[str, str]           MD5 of the two archives, by file name
    dataset: RawCifar             the arrays in the archives (503 train, 101 test images,
                                  5 uneven training batches)
    requests: list[Request]       every request received: .method, .path, .headers (dict),
                                  .range (the Range header or None), .status (as answered)
    fail_next(n, status=500)      answer the next n GET requests with ``status``
    cut_next_after(nbytes)        the next GET sends full headers, then only ``nbytes`` of the
                                  body, then closes the connection (once)
    ignore_range(flag=True)       answer Range requests with a plain 200 and the whole file
    delay: float                  seconds to wait before answering each GET (a slow link; default 0)
    reset()                       forget requests and pending faults

``dead_url`` is the URL of a file on a 127.0.0.1 port where nothing listens (no network).
``good_and_incomplete_cifar`` is two data folders (for ``data.dir``) of the small archive's
python layout, the second without its test_batch.

``reap(proc) -> proc`` hands a started process to the test's teardown: it is killed and
waited for when the test ends, however it ends (tests/hostile.py: ``reaped``).

``pytest --hostile-checks tests/test_hostile_*.py`` ends with how many hostile cases passed
asserting all three of exit code, one-line message and untouched files (tests/hostile.py).
"""

import contextlib
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from archive_writer import write_archive
from hostile import CHECKED, reaped

from cs_nets.data.synthetic import make_synthetic
from cs_nets.training import _blas as blas


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    status: int = 0

    @property
    def range(self):
        return self.headers.get("Range")


class CifarServer:
    """State and fault injection of the test server; see the module docstring."""

    def __init__(self, root, dataset, md5):
        self.root, self.dataset, self.md5 = Path(root), dataset, dict(md5)
        self.requests = []
        self._lock = threading.Lock()
        self._fail = []  # statuses still to answer with
        self._cut_after = None
        self._ignore_range = False
        self.delay = 0.0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval makes shutdown (at teardown) quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url_for(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def fail_next(self, n, status=500):
        with self._lock:
            self._fail.extend([status] * n)

    def cut_next_after(self, nbytes):
        with self._lock:
            self._cut_after = nbytes

    def ignore_range(self, flag=True):
        self._ignore_range = flag

    def reset(self):
        with self._lock:
            self.requests.clear()
            self._fail.clear()
            self._cut_after = None
            self._ignore_range = False

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_fault(self):
        """(status to fail with or None, byte count to cut after or None), consumed."""
        with self._lock:
            status = self._fail.pop(0) if self._fail else None
            cut, self._cut_after = (None, self._cut_after) if status else (self._cut_after, None)
            return status, cut


def _handler_for(server):
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

        def _answer(self, body):
            record = Request(self.command, self.path, dict(self.headers))
            with server._lock:
                server.requests.append(record)
            fail, cut = server._next_fault() if body else (None, None)
            if body and server.delay:
                time.sleep(server.delay)
            if fail:
                return self._status_only(record, fail)
            path = server.root / self.path.lstrip("/").split("?")[0]
            if not path.is_file() or server.root.resolve() not in path.resolve().parents:
                return self._status_only(record, 404)
            data = path.read_bytes()
            start, end, status = 0, len(data) - 1, 200
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes=") and not server._ignore_range:
                first, _, last = wanted[6:].partition("-")
                start = int(first)
                end = min(int(last), end) if last else end
                if start >= len(data):
                    return self._status_only(record, 416, {"Content-Range": f"bytes */{len(data)}"})
                status = 206
            record.status = status
            self.send_response(status)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if not body:
                return
            payload = data[start:end + 1]
            if cut is not None:
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the client sees a broken transfer
                return
            self.wfile.write(payload)

        def _status_only(self, record, status, headers=None):
            record.status = status
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):  # keep test output clean
            pass

    return Handler


@pytest.fixture(scope="session")
def small_cifar_archives(tmp_path_factory):
    """(folder, dataset, {archive name: md5}) with both layouts of a small synthetic CIFAR."""
    folder = tmp_path_factory.mktemp("archives")
    dataset = make_synthetic(num_train=503, num_test=101, seed=7)
    md5 = {}
    for fmt in ("python", "binary"):
        path, digest = write_archive(folder, dataset.X_train, dataset.y_train,
                                     dataset.X_test, dataset.y_test, fmt=fmt)
        md5[path.name] = digest
    return folder, dataset, md5


@pytest.fixture
def cifar_server(small_cifar_archives, tmp_path_factory):
    """A fresh server (no requests yet, no faults) serving copies of the small archives."""
    folder, dataset, md5 = small_cifar_archives
    root = tmp_path_factory.mktemp("www")
    for name in md5:
        shutil.copy(folder / name, root / name)
    server = CifarServer(root, dataset, md5)
    yield server
    server.close()


@pytest.fixture
def good_and_incomplete_cifar(small_cifar_archives, tmp_path_factory):
    """(good, incomplete): data folders with the small CIFAR-10 extracted (python layout); the second lost test_batch."""
    from cs_nets.data.cifar10 import OFFICIAL
    from cs_nets.data.extract import safe_extract

    archives, _, _ = small_cifar_archives
    root = tmp_path_factory.mktemp("cifar-folders")
    for name in ("good", "incomplete"):
        (root / name).mkdir()
        safe_extract(archives / OFFICIAL["python"].filename, root / name, OFFICIAL["python"].folder)
    (root / "incomplete" / OFFICIAL["python"].folder / "test_batch").unlink()
    return root / "good", root / "incomplete"


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"


@pytest.fixture
def reap():
    """reap(proc) -> proc: `proc` (and its process group, when it leads one) is gone when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda proc: stack.enter_context(reaped(proc))


@pytest.fixture(params=["openblas", "numpy"])
def blas_backend(request):
    """Run the test once through NumPy's OpenBLAS (cs_nets.training._blas) and once through its NumPy fallback."""
    blas.use_numpy(request.param == "numpy")
    if request.param == "openblas" and blas.backend() == "numpy":
        pytest.skip("NumPy's bundled OpenBLAS is not on this machine")
    yield request.param
    blas.use_numpy(None)  # back to the default (CS_NETS_BLAS)


def pytest_addoption(parser):
    parser.addoption("--hostile-checks", action="store_true",
                     help="count the passed hostile cases (tests/test_hostile_*.py) that asserted exit code, one line "
                          "and untouched files through tests/hostile.py")


def pytest_terminal_summary(terminalreporter, config):
    if not config.getoption("--hostile-checks"):
        return
    passed = [r.nodeid for r in terminalreporter.stats.get("passed", []) if r.when == "call"
              and Path(r.nodeid.split("::")[0]).name.startswith("test_hostile_")]
    by_file: dict[str, list[int]] = {}
    for nodeid in passed:
        counts = by_file.setdefault(nodeid.split("::")[0], [0, 0])
        counts[0] += CHECKED.get(nodeid, set()) >= {"one line", "untouched"}
        counts[1] += 1
    terminalreporter.write_sep("-", "hostile cases asserting exit code, one line and untouched files")
    for name, (three, total) in sorted(by_file.items()):
        terminalreporter.write_line(f"{name}: {three} of {total} passed")
    terminalreporter.write_line(f"all: {sum(c[0] for c in by_file.values())} of {len(passed)} passed")


def pytest_collection_modifyitems(items):
    """A test that needs the Ray cluster fixture is marked ``ray`` and ``slow``: it starts
    Ray processes, which takes seconds (``pytest -m "not slow"`` is the inner loop)."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.slow)
